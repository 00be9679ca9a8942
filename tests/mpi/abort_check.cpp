// abort_check — a rank that throws ends the whole job at once, with its
// message (train/job.h, what lory_train runs in). Under `mpirun -np 2`:
// rank 1 throws while rank 0 waits for it in a barrier that never
// completes; ctest expects rank 1's message and a prompt end (TIMEOUT).
#include <chrono>
#include <cstdio>
#include <thread>

#include "tensor/error.h"
#include "train/job.h"

int main(int argc, char** argv) {
  using namespace lory::train;
  return run_job(&argc, &argv, "abort_check", [](Communicator& comm) {
    if (comm.world() < 2) {
      std::printf("abort_check: needs two ranks; skipped\n");
      return 77;
    }
    if (comm.rank() == 1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));  // rank 0 is in the barrier by now
      lory::fail("a deliberate failure on rank ", comm.rank());
    }
    comm.barrier();  // rank 0 waits here until the job is ended
    std::printf("abort_check: rank %d got past the barrier: the failing rank did not end the job\n", comm.rank());
    return 0;
  });
}
