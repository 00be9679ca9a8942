// The doctest runner for lory_mpi_tests: every rank of an `mpirun -np N`
// job runs every test case, in the same order (their collectives must
// match). CMake registers the binary with ctest at N = 1, 2 and 4; a failure
// on any rank fails the job. Rank 0 reports; the others print only failures.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "tests/mpi/world.h"
#include "train/mpi_communicator.h"

namespace lory::test {
train::Communicator* g_world = nullptr;
train::Communicator& world() { return *g_world; }
}  // namespace lory::test

int main(int argc, char** argv) {
  using namespace lory::train;
  if (!mpi_compiled()) {
    std::printf("lory_mpi_tests: this build has no MPI; skipped\n");
    return 77;
  }
  MpiSession session(&argc, &argv);
  int code = 0;
  {
    std::unique_ptr<Communicator> world = mpi_world_communicator();
    lory::test::g_world = world.get();
    doctest::Context context(argc, argv);
    if (world->rank() != 0) context.setOption("success", false), context.setOption("minimal", true);
    code = context.run();
    // Every rank's verdict: the job fails if any rank's did.
    code = static_cast<int>(world->max_over_ranks(code));
    lory::test::g_world = nullptr;
  }
  return code;
}
