// communicator.h — the collectives data parallelism needs, over flat buffers.
//
// Data parallelism (paper §4.1 trains on up to 64 GPUs) runs one process per
// device, a "rank"; every rank holds the whole model, trains on its own share
// of each global batch, and the ranks combine their gradients with
// collectives. This interface is the only thing the trainer knows about them;
// the implementations wrap the existing engines:
//
//   single_process_communicator()  world of one: every collective is a no-op
//   MPI   (mpi_communicator.h)     CPU tensors; also bootstraps NCCL
//   NCCL  (nccl_communicator.h)    CUDA tensors, on its own stream
//
// The collectives, for a world of N ranks (x_r: rank r's buffer):
//   all_reduce_sum   x_r <- x_0 + ... + x_{N-1}                 every rank
//   reduce_scatter   recv_r <- sum over ranks of send[displ_r, displ_r + counts[r])
//                    (counts may differ, and be 0: a bucket of gradients
//                    that meets only some ranks' shards, train/gradient_reducer.h)
//   all_gather       x = [part_0 | part_1 | ... | part_{N-1}], every part
//                    [x.numel() / N] elements, rank r's at r * part (in place)
//   broadcast        x_r <- x_root
//   all_to_all       rank r's w-th segment goes to rank w (host buffers)
// Buffers are contiguous 1-D tensors on the communicator's device. Sums are
// f32 or f64 (a bf16 gradient is accumulated into f32 before it is reduced);
// all_gather and broadcast move any dtype. For a fixed world size every
// result is the same bits on every run: the engines reduce in a fixed order
// for a given size and count, and nothing here depends on timing.
//
// Control values (a stop request, a NaN seen on one rank, a norm's partial
// sums, an error message) are host scalars and go through MPI in both
// implementations: the *_host calls.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace lory::train {

// A collective that was started and may still be running.
class PendingCollective {
 public:
  virtual ~PendingCollective() = default;
  // True once it has finished. MPI moves a non-blocking collective forward
  // only inside MPI calls, so the trainer calls this now and then during
  // backward (train/gradient_reducer.h): that is what makes the overlap real.
  virtual bool test() = 0;
  // Blocks until it has finished (NCCL: until work queued after it on the
  // compute stream will see its result).
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world() const = 0;
  virtual int local_rank() const = 0;  // among the ranks of this machine: which GPU to use
  virtual std::string name() const = 0;  // "single process", "MPI", "NCCL"
  // True when a collective's completion is seen by the host as it happens
  // (MPI): only then do the host's clocks time the reductions and what of
  // them backward hid. NCCL completes on a GPU stream; its timings would
  // need CUDA events, so the reducer reports none for it.
  virtual bool host_timed() const { return true; }

  // ---- flat buffers (contiguous, 1-D) ----
  virtual void all_reduce_sum(Tensor& buffer) = 0;
  virtual void all_gather(Tensor& buffer) = 0;
  virtual void broadcast(Tensor& buffer, int root) = 0;
  // `send` holds sum(counts) elements; `recv` counts[rank()] (f32).
  virtual std::unique_ptr<PendingCollective> start_reduce_scatter(const Tensor& send, const Tensor& recv,
                                                                  const std::vector<int64_t>& counts) = 0;
  // Host (CPU) buffers, any dtype: this rank sends the w-th segment of
  // `send` (send_counts[w] elements, segments in rank order) to rank w, and
  // receives recv_counts[r] elements from each rank r into `recv`, in rank
  // order. Counts are multiples of 16 elements. Checkpoints use it to move
  // shards to the rank that writes them (train/train_checkpoint.h).
  virtual void all_to_all(const Tensor& send, const std::vector<int64_t>& send_counts, const Tensor& recv,
                          const std::vector<int64_t>& recv_counts) = 0;
  virtual void barrier() = 0;

  // ---- host control values ----
  enum class Op { sum, max, min };
  virtual void all_reduce_host(std::vector<int64_t>& values, Op op) = 0;
  virtual std::vector<double> all_gather_host(double value) = 0;  // rank order
  virtual void broadcast_host(std::string& text, int root) = 0;

  // Conveniences over the above.
  int64_t max_over_ranks(int64_t x);
  int64_t min_over_ranks(int64_t x);
  bool is_root() const { return rank() == 0; }
};

// The world of one process: rank 0 of 1, every collective leaves its buffers as they are.
std::unique_ptr<Communicator> single_process_communicator();

// Checks a buffer handed to a collective: contiguous, 1-D, on `device`
// (names the collective and the tensor otherwise).
void check_collective_buffer(const char* collective, const Tensor& buffer, Device device);

}  // namespace lory::train
