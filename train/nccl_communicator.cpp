// nccl_communicator.cpp — see nccl_communicator.h.
#include "train/nccl_communicator.h"

#ifdef LORY_HAVE_NCCL
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstring>

#include "cuda/stream.h"
#endif

namespace lory::train {

#ifdef LORY_HAVE_NCCL

bool nccl_compiled() { return true; }

namespace {

void check_nccl(ncclResult_t r, const char* call) {
  if (r != ncclSuccess) fail("NCCL: ", call, " failed: ", ncclGetErrorString(r));
}
void check_cuda(cudaError_t r, const char* call) {
  if (r != cudaSuccess) fail("NCCL communicator: ", call, " failed: ", cudaGetErrorString(r));
}
#define LORY_NCCL(call) check_nccl((call), #call)
#define LORY_CUDART(call) check_cuda((call), #call)

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::f32: return ncclFloat32;
    case DType::f64: return ncclFloat64;
    case DType::bf16: return ncclBfloat16;
    case DType::f16: return ncclFloat16;
    case DType::i32: return ncclInt32;
    case DType::i64: return ncclInt64;
    case DType::u8:
    case DType::boolean: return ncclUint8;
  }
  return ncclUint8;
}

// An event recorded on the NCCL stream after a collective.
class NcclPending final : public PendingCollective {
 public:
  NcclPending(cudaEvent_t done, cudaStream_t compute) : done_(done), compute_(compute) {}
  ~NcclPending() override { cudaEventDestroy(done_); }
  bool test() override {
    const cudaError_t r = cudaEventQuery(done_);
    if (r == cudaErrorNotReady) return false;
    LORY_CUDART(r);
    return true;
  }
  void wait() override { LORY_CUDART(cudaStreamWaitEvent(compute_, done_, 0)); }

 private:
  cudaEvent_t done_;
  cudaStream_t compute_;
};

class Nccl final : public Communicator {
 public:
  Nccl(Communicator& mpi, Device device) : mpi_(mpi), device_(device) {
    LORY_CHECK(device.is_cuda(), "nccl_communicator: NCCL serves CUDA devices, not ", device.str());
    cuda::ensure_device(device.index);
    compute_ = cuda::stream_for(device.index);
    ncclUniqueId id;
    if (mpi.is_root()) LORY_NCCL(ncclGetUniqueId(&id));
    std::string bytes(reinterpret_cast<const char*>(&id), sizeof id);
    mpi.broadcast_host(bytes, 0);
    std::memcpy(&id, bytes.data(), sizeof id);
    LORY_NCCL(ncclCommInitRank(&comm_, mpi.world(), id, mpi.rank()));
    LORY_CUDART(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    LORY_CUDART(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
  }
  ~Nccl() override {
    cudaStreamSynchronize(stream_);
    ncclCommDestroy(comm_);
    cudaEventDestroy(ready_);
    cudaStreamDestroy(stream_);
  }

  int rank() const override { return mpi_.rank(); }
  int world() const override { return mpi_.world(); }
  int local_rank() const override { return mpi_.local_rank(); }
  std::string name() const override { return "NCCL"; }
  bool host_timed() const override { return false; }

  void all_reduce_sum(Tensor& buffer) override {
    if (buffer.device().is_cpu()) return mpi_.all_reduce_sum(buffer);
    check_collective_buffer("all_reduce_sum", buffer, device_);
    LORY_CHECK(buffer.dtype() == DType::f32 || buffer.dtype() == DType::f64,
               "all_reduce_sum: sums are f32 or f64, got ", buffer.describe());
    begin();
    LORY_NCCL(ncclAllReduce(buffer.data_ptr(), buffer.data_ptr(), static_cast<size_t>(buffer.numel()),
                            nccl_type(buffer.dtype()), ncclSum, comm_, stream_));
    end()->wait();
    buffer.bump_version();
  }

  void all_gather(Tensor& buffer) override {
    if (buffer.device().is_cpu()) return mpi_.all_gather(buffer);
    check_collective_buffer("all_gather", buffer, device_);
    LORY_CHECK(buffer.numel() % world() == 0, "all_gather: ", buffer.describe(), " does not split into ", world(),
               " equal parts");
    const size_t part = static_cast<size_t>(buffer.numel() / world());
    char* base = static_cast<char*>(buffer.data_ptr());
    begin();
    // In place: this rank's part already sits at rank * part.
    LORY_NCCL(ncclAllGather(base + static_cast<size_t>(rank()) * part * dtype_size(buffer.dtype()), base, part,
                            nccl_type(buffer.dtype()), comm_, stream_));
    end()->wait();
    buffer.bump_version();
  }

  void broadcast(Tensor& buffer, int root) override {
    if (buffer.device().is_cpu()) return mpi_.broadcast(buffer, root);
    check_collective_buffer("broadcast", buffer, device_);
    begin();
    LORY_NCCL(ncclBroadcast(buffer.data_ptr(), buffer.data_ptr(), static_cast<size_t>(buffer.numel()),
                            nccl_type(buffer.dtype()), root, comm_, stream_));
    end()->wait();
    buffer.bump_version();
  }

  std::unique_ptr<PendingCollective> start_reduce_scatter(const Tensor& send, const Tensor& recv,
                                                          const std::vector<int64_t>& counts) override {
    check_collective_buffer("reduce_scatter", send, device_);
    check_collective_buffer("reduce_scatter", recv, device_);
    LORY_CHECK(send.dtype() == DType::f32 && recv.dtype() == DType::f32, "reduce_scatter: sums are f32, got ",
               send.describe(), " -> ", recv.describe());
    LORY_CHECK(static_cast<int>(counts.size()) == world(), "reduce_scatter: ", counts.size(), " counts for ", world(),
               " ranks");
    int64_t total = 0;
    bool equal = true;
    for (int64_t n : counts) total += n, equal = equal && n == counts[0];
    LORY_CHECK(send.numel() == total && recv.numel() == counts[static_cast<size_t>(rank())],
               "reduce_scatter: send ", send.describe(), " must hold the ", total, " elements of all parts and recv ",
               recv.describe(), " this rank's ", counts[static_cast<size_t>(rank())]);
    begin();
    const float* in = static_cast<const float*>(send.data_ptr());
    float* out = static_cast<float*>(recv.data_ptr());
    if (equal) {
      LORY_NCCL(ncclReduceScatter(in, out, static_cast<size_t>(counts[0]), ncclFloat32, ncclSum, comm_, stream_));
    } else {
      // NCCL's reduce-scatter takes equal parts: a bucket that meets the
      // shards unequally is one reduce per rank that receives something.
      LORY_NCCL(ncclGroupStart());
      int64_t at = 0;
      for (int r = 0; r < world(); ++r) {
        const int64_t n = counts[static_cast<size_t>(r)];
        if (n > 0)
          LORY_NCCL(ncclReduce(in + at, r == rank() ? out : nullptr, static_cast<size_t>(n), ncclFloat32, ncclSum, r,
                               comm_, stream_));
        at += n;
      }
      LORY_NCCL(ncclGroupEnd());
    }
    recv.bump_version();
    return end();
  }

  void all_to_all(const Tensor& send, const std::vector<int64_t>& send_counts, const Tensor& recv,
                  const std::vector<int64_t>& recv_counts) override {
    mpi_.all_to_all(send, send_counts, recv, recv_counts);  // host buffers (checkpoints)
  }
  void barrier() override {
    LORY_CUDART(cudaStreamSynchronize(stream_));
    mpi_.barrier();
  }
  void all_reduce_host(std::vector<int64_t>& values, Op op) override { mpi_.all_reduce_host(values, op); }
  std::vector<double> all_gather_host(double value) override { return mpi_.all_gather_host(value); }
  void broadcast_host(std::string& text, int root) override { mpi_.broadcast_host(text, root); }

 private:
  // The NCCL stream waits for what the compute stream has queued so far.
  void begin() {
    cuda::ensure_device(device_.index);
    LORY_CUDART(cudaEventRecord(ready_, compute_));
    LORY_CUDART(cudaStreamWaitEvent(stream_, ready_, 0));
  }
  std::unique_ptr<PendingCollective> end() {
    cudaEvent_t done;
    LORY_CUDART(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
    LORY_CUDART(cudaEventRecord(done, stream_));
    return std::make_unique<NcclPending>(done, compute_);
  }

  Communicator& mpi_;
  Device device_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr, compute_ = nullptr;
  cudaEvent_t ready_ = nullptr;
};

}  // namespace

std::unique_ptr<Communicator> nccl_communicator(Communicator& mpi, Device device) {
  return std::make_unique<Nccl>(mpi, device);
}

#else  // no NCCL in this build

bool nccl_compiled() { return false; }

std::unique_ptr<Communicator> nccl_communicator(Communicator&, Device device) {
  fail("train.device = \"", device.str(), "\" with several ranks needs NCCL, and this build has none (CMake's ",
       "'lory: NCCL' line says why: it needs the CUDA toolkit's libnccl)");
}

#endif

}  // namespace lory::train
