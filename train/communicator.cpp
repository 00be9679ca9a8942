// communicator.cpp — the world of one process, and what every communicator shares.
#include "train/communicator.h"

namespace lory::train {

int64_t Communicator::max_over_ranks(int64_t x) {
  std::vector<int64_t> v{x};
  all_reduce_host(v, Op::max);
  return v[0];
}

int64_t Communicator::min_over_ranks(int64_t x) {
  std::vector<int64_t> v{x};
  all_reduce_host(v, Op::min);
  return v[0];
}

void check_collective_buffer(const char* collective, const Tensor& buffer, Device device) {
  LORY_CHECK(buffer.defined() && buffer.dim() == 1 && buffer.is_contiguous(), collective,
             ": buffers must be contiguous 1-D tensors, got ", buffer.defined() ? buffer.describe() : "undefined");
  LORY_CHECK(buffer.device() == device, collective, ": ", buffer.describe(), " is not on ", device.str(),
             ", the device this communicator serves");
}

namespace {

class Finished final : public PendingCollective {
 public:
  bool test() override { return true; }
  void wait() override {}
};

// A world of one: the sum over one rank is the buffer itself, and so on.
class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world() const override { return 1; }
  int local_rank() const override { return 0; }
  std::string name() const override { return "single process"; }
  void all_reduce_sum(Tensor&) override {}
  void all_gather(Tensor&) override {}
  void broadcast(Tensor&, int) override {}
  std::unique_ptr<PendingCollective> start_reduce_scatter(const Tensor& send, const Tensor& recv,
                                                          const std::vector<int64_t>& counts) override {
    LORY_CHECK(counts.size() == 1 && send.numel() == counts[0] && recv.numel() == counts[0],
               "reduce_scatter: a world of one receives all of send");
    if (send.data_ptr() != recv.data_ptr()) Tensor(recv).copy_(send);
    return std::make_unique<Finished>();
  }
  void all_to_all(const Tensor& send, const std::vector<int64_t>& send_counts, const Tensor& recv,
                  const std::vector<int64_t>& recv_counts) override {
    LORY_CHECK(send_counts.size() == 1 && recv_counts.size() == 1 && send_counts[0] == recv_counts[0] &&
                   send.numel() == send_counts[0] && recv.numel() == recv_counts[0],
               "all_to_all: a world of one sends all of send to itself");
    Tensor(recv).copy_(send);
  }
  void barrier() override {}
  void all_reduce_host(std::vector<int64_t>&, Op) override {}
  std::vector<double> all_gather_host(double value) override { return {value}; }
  void broadcast_host(std::string&, int) override {}
};

}  // namespace

std::unique_ptr<Communicator> single_process_communicator() { return std::make_unique<SingleProcess>(); }

}  // namespace lory::train
