// mpi_communicator.cpp — see mpi_communicator.h.
#include "train/mpi_communicator.h"

#include <climits>
#include <cstdio>
#include <cstdlib>

#ifdef LORY_HAVE_MPI
#include <mpi.h>
#endif

namespace lory::train {

bool mpi_compiled() {
#ifdef LORY_HAVE_MPI
  return true;
#else
  return false;
#endif
}

bool launched_by_mpi() {
  // Open MPI's mpirun, PMIx (Open MPI 5, srun --mpi=pmix), PMI-1/2 (MPICH's
  // hydra, srun --mpi=pmi2), MVAPICH.
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "MV2_COMM_WORLD_SIZE"})
    if (std::getenv(name)) return true;
  return false;
}

#ifdef LORY_HAVE_MPI

namespace {

// Every MPI call returns its error (MPI_ERRORS_RETURN on our communicators),
// turned into an exception that names the call.
void check_mpi(int code, const char* call) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  fail("MPI: ", call, " failed: ", std::string(text, static_cast<size_t>(length)));
}
#define LORY_MPI(call) check_mpi((call), #call)

MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::f32: return MPI_FLOAT;
    case DType::f64: return MPI_DOUBLE;
    case DType::bf16:
    case DType::f16: return MPI_UINT16_T;  // moved, never summed
    case DType::i32: return MPI_INT32_T;
    case DType::i64: return MPI_INT64_T;
    case DType::u8:
    case DType::boolean: return MPI_UINT8_T;
  }
  return MPI_DATATYPE_NULL;
}

// MPI counts are ints: larger buffers go in pieces of at most this many elements.
constexpr int64_t kMaxCount = int64_t{1} << 30;

int to_count(int64_t n, const char* what) {
  LORY_CHECK(n >= 0 && n <= INT_MAX, "MPI: ", what, " of ", n, " elements is more than one MPI count can say");
  return static_cast<int>(n);
}

class MpiPending final : public PendingCollective {
 public:
  explicit MpiPending(std::vector<int> counts) : counts_(std::move(counts)) {}
  bool test() override {
    if (request_ == MPI_REQUEST_NULL) return true;
    int done = 0;
    LORY_MPI(MPI_Test(&request_, &done, MPI_STATUS_IGNORE));
    return done != 0;
  }
  void wait() override {
    if (request_ != MPI_REQUEST_NULL) LORY_MPI(MPI_Wait(&request_, MPI_STATUS_IGNORE));
  }
  ~MpiPending() override {
    if (request_ != MPI_REQUEST_NULL) MPI_Wait(&request_, MPI_STATUS_IGNORE);  // never leave MPI writing into freed memory
  }
  MPI_Request request_ = MPI_REQUEST_NULL;
  std::vector<int> counts_;  // must outlive the request
};

class Mpi final : public Communicator {
 public:
  Mpi(MPI_Comm comm, bool owned) : comm_(comm), owned_(owned) {
    LORY_MPI(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
    LORY_MPI(MPI_Comm_rank(comm_, &rank_));
    LORY_MPI(MPI_Comm_size(comm_, &world_));
    MPI_Comm local;
    LORY_MPI(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local));
    LORY_MPI(MPI_Comm_rank(local, &local_rank_));
    MPI_Comm_free(&local);
  }
  ~Mpi() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owned_ && !finalized) MPI_Comm_free(&comm_);
  }

  int rank() const override { return rank_; }
  int world() const override { return world_; }
  int local_rank() const override { return local_rank_; }
  std::string name() const override { return "MPI"; }
  MPI_Comm comm() const { return comm_; }

  void all_reduce_sum(Tensor& buffer) override {
    check_collective_buffer("all_reduce_sum", buffer, cpu_device());
    LORY_CHECK(buffer.dtype() == DType::f32 || buffer.dtype() == DType::f64,
               "all_reduce_sum: sums are f32 or f64, got ", buffer.describe());
    char* p = static_cast<char*>(buffer.data_ptr());
    const size_t esize = dtype_size(buffer.dtype());
    for (int64_t at = 0; at < buffer.numel(); at += kMaxCount) {
      const int n = static_cast<int>(std::min(kMaxCount, buffer.numel() - at));
      LORY_MPI(MPI_Allreduce(MPI_IN_PLACE, p + at * static_cast<int64_t>(esize), n, mpi_type(buffer.dtype()), MPI_SUM,
                             comm_));
    }
    buffer.bump_version();
  }

  void all_gather(Tensor& buffer) override {
    check_collective_buffer("all_gather", buffer, cpu_device());
    LORY_CHECK(buffer.numel() % world_ == 0, "all_gather: ", buffer.describe(), " does not split into ", world_,
               " equal parts");
    // Parts larger than an int count travel as blocks of 16 elements (every
    // flat buffer is a multiple of 16 per rank, train/flat_parameters.h).
    const int64_t part = buffer.numel() / world_;
    MPI_Datatype type = mpi_type(buffer.dtype()), block = MPI_DATATYPE_NULL;
    int64_t count = part;
    if (part > INT_MAX) {
      LORY_CHECK(part % 16 == 0, "all_gather: parts of ", part, " elements must be a multiple of 16");
      LORY_MPI(MPI_Type_contiguous(16, type, &block));
      LORY_MPI(MPI_Type_commit(&block));
      type = block;
      count = part / 16;
    }
    const int code = MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buffer.data_ptr(),
                                   to_count(count, "an all_gather part"), type, comm_);
    if (block != MPI_DATATYPE_NULL) MPI_Type_free(&block);
    check_mpi(code, "MPI_Allgather");
    buffer.bump_version();
  }

  void broadcast(Tensor& buffer, int root) override {
    check_collective_buffer("broadcast", buffer, cpu_device());
    char* p = static_cast<char*>(buffer.data_ptr());
    const int64_t esize = static_cast<int64_t>(dtype_size(buffer.dtype()));
    for (int64_t at = 0; at < buffer.numel(); at += kMaxCount) {
      const int n = static_cast<int>(std::min(kMaxCount, buffer.numel() - at));
      LORY_MPI(MPI_Bcast(p + at * esize, n, mpi_type(buffer.dtype()), root, comm_));
    }
    buffer.bump_version();
  }

  std::unique_ptr<PendingCollective> start_reduce_scatter(const Tensor& send, const Tensor& recv,
                                                          const std::vector<int64_t>& counts) override {
    check_collective_buffer("reduce_scatter", send, cpu_device());
    check_collective_buffer("reduce_scatter", recv, cpu_device());
    LORY_CHECK(send.dtype() == DType::f32 && recv.dtype() == DType::f32, "reduce_scatter: sums are f32, got ",
               send.describe(), " -> ", recv.describe());
    LORY_CHECK(static_cast<int>(counts.size()) == world_, "reduce_scatter: ", counts.size(), " counts for ", world_,
               " ranks");
    std::vector<int> c;
    int64_t total = 0;
    for (int64_t n : counts) c.push_back(to_count(n, "a reduce_scatter part")), total += n;
    LORY_CHECK(send.numel() == total && recv.numel() == counts[static_cast<size_t>(rank_)],
               "reduce_scatter: send ", send.describe(), " must hold the ", total, " elements of all parts and recv ",
               recv.describe(), " this rank's ", counts[static_cast<size_t>(rank_)]);
    auto pending = std::make_unique<MpiPending>(std::move(c));
    LORY_MPI(MPI_Ireduce_scatter(send.data_ptr(), recv.data_ptr(), pending->counts_.data(), MPI_FLOAT, MPI_SUM, comm_,
                                 &pending->request_));
    recv.bump_version();
    return pending;
  }

  void all_to_all(const Tensor& send, const std::vector<int64_t>& send_counts, const Tensor& recv,
                  const std::vector<int64_t>& recv_counts) override {
    check_collective_buffer("all_to_all", send, cpu_device());
    check_collective_buffer("all_to_all", recv, cpu_device());
    LORY_CHECK(send.dtype() == recv.dtype(), "all_to_all: send ", send.describe(), " and recv ", recv.describe(),
               " differ in dtype");
    LORY_CHECK(static_cast<int>(send_counts.size()) == world_ && static_cast<int>(recv_counts.size()) == world_,
               "all_to_all: needs one count per rank (", world_, ")");
    // In blocks of 16 elements, so that shards of billions of elements fit MPI's int counts.
    std::vector<int> sc, sd, rc, rd;
    int64_t s_at = 0, r_at = 0;
    for (int r = 0; r < world_; ++r) {
      const int64_t s = send_counts[static_cast<size_t>(r)], c = recv_counts[static_cast<size_t>(r)];
      LORY_CHECK(s % 16 == 0 && c % 16 == 0, "all_to_all: counts must be multiples of 16, got ", s, " and ", c);
      sc.push_back(to_count(s / 16, "an all_to_all part")), sd.push_back(to_count(s_at / 16, "an all_to_all offset"));
      rc.push_back(to_count(c / 16, "an all_to_all part")), rd.push_back(to_count(r_at / 16, "an all_to_all offset"));
      s_at += s, r_at += c;
    }
    LORY_CHECK(s_at == send.numel() && r_at == recv.numel(), "all_to_all: counts add up to ", s_at, " and ", r_at,
               ", the buffers hold ", send.numel(), " and ", recv.numel());
    MPI_Datatype block;
    LORY_MPI(MPI_Type_contiguous(16, mpi_type(send.dtype()), &block));
    LORY_MPI(MPI_Type_commit(&block));
    const int code = MPI_Alltoallv(send.data_ptr(), sc.data(), sd.data(), block, recv.data_ptr(), rc.data(), rd.data(),
                                   block, comm_);
    MPI_Type_free(&block);
    check_mpi(code, "MPI_Alltoallv");
    recv.bump_version();
  }

  void barrier() override { LORY_MPI(MPI_Barrier(comm_)); }

  void all_reduce_host(std::vector<int64_t>& values, Op op) override {
    const MPI_Op mpi_op = op == Op::sum ? MPI_SUM : op == Op::max ? MPI_MAX : MPI_MIN;
    LORY_MPI(MPI_Allreduce(MPI_IN_PLACE, values.data(), to_count(static_cast<int64_t>(values.size()), "a host reduce"),
                           MPI_INT64_T, mpi_op, comm_));
  }

  std::vector<double> all_gather_host(double value) override {
    std::vector<double> out(static_cast<size_t>(world_));
    LORY_MPI(MPI_Allgather(&value, 1, MPI_DOUBLE, out.data(), 1, MPI_DOUBLE, comm_));
    return out;
  }

  void broadcast_host(std::string& text, int root) override {
    int64_t n = static_cast<int64_t>(text.size());
    LORY_MPI(MPI_Bcast(&n, 1, MPI_INT64_T, root, comm_));
    text.resize(static_cast<size_t>(n));
    LORY_MPI(MPI_Bcast(text.data(), to_count(n, "a message"), MPI_CHAR, root, comm_));
  }

 private:
  MPI_Comm comm_;
  bool owned_;
  int rank_ = 0, world_ = 1, local_rank_ = 0;
};

}  // namespace

MpiSession::MpiSession(int* argc, char*** argv) {
  int provided = 0;
  LORY_MPI(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
  // The data loader's thread and OpenMP's never call MPI, but MPI must know they exist.
  if (provided < MPI_THREAD_FUNNELED) {
    MPI_Finalize();
    fail("MPI: this MPI library offers no MPI_THREAD_FUNNELED support (only level ", provided,
         "); lory_train runs threads besides the one that calls MPI");
  }
  // Errors during set-up come back as codes too, not as an abort without a message.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

MpiSession::~MpiSession() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

std::unique_ptr<Communicator> mpi_world_communicator() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  LORY_CHECK(initialized, "mpi_world_communicator: MPI is not initialised (create an MpiSession in main first)");
  return std::make_unique<Mpi>(MPI_COMM_WORLD, false);
}

std::unique_ptr<Communicator> mpi_split_communicator(Communicator& parent, int color) {
  auto* mpi = dynamic_cast<Mpi*>(&parent);
  LORY_CHECK(mpi, "mpi_split_communicator: the parent is a ", parent.name(), " communicator, not an MPI one");
  MPI_Comm sub;
  LORY_MPI(MPI_Comm_split(mpi->comm(), color, mpi->rank(), &sub));
  return std::make_unique<Mpi>(sub, true);
}

void abort_job(int exit_code) {
  std::fflush(stdout);
  std::fflush(stderr);
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::exit(exit_code);
}

#else  // no MPI in this build

namespace {
[[noreturn]] void no_mpi(const char* what) {
  fail(what, ": this build has no MPI (install libopenmpi-dev and rebuild; CMake's summary line 'lory: MPI' says why "
             "it is off)");
}
}  // namespace

MpiSession::MpiSession(int*, char***) { no_mpi("MpiSession"); }
MpiSession::~MpiSession() = default;
std::unique_ptr<Communicator> mpi_world_communicator() { no_mpi("mpi_world_communicator"); }
std::unique_ptr<Communicator> mpi_split_communicator(Communicator&, int) { no_mpi("mpi_split_communicator"); }
void abort_job(int exit_code) {
  std::fflush(stdout);
  std::fflush(stderr);
  std::exit(exit_code);
}

#endif

}  // namespace lory::train
