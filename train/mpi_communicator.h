// mpi_communicator.h — data parallelism over MPI: how a job starts, and the
// collectives on CPU tensors.
//
//   mpirun -np 4 build/bin/lory_train --config X      (or srun under Slurm)
//
// Each process is one rank of MPI_COMM_WORLD. The launcher says so through
// its environment (OMPI_COMM_WORLD_SIZE, PMIX_RANK, PMI_RANK, ...), and
// only then is MPI initialised: a plain `lory_train` runs exactly as before,
// with the single-process communicator. The machine-local rank (which GPU a
// rank drives) comes from splitting the world by shared memory
// (MPI_Comm_split_type), not from launcher-specific variables.
//
// Collectives map one to one onto MPI's: all_reduce_sum -> MPI_Allreduce,
// reduce_scatter -> MPI_Ireduce_scatter (per-rank counts, non-blocking),
// all_gather -> MPI_Allgather (MPI_IN_PLACE), broadcast -> MPI_Bcast.
// bf16/f16 buffers travel as 16-bit integers (they are never summed).
//
// A build without MPI compiles this too: launched_by_mpi() is then false,
// and the functions that need MPI say that this build has none.
#pragma once

#include <memory>

#include "train/communicator.h"

namespace lory::train {

// True when the build has MPI.
bool mpi_compiled();
// True when an MPI launcher (mpirun, srun with PMI/PMIx) started this process.
bool launched_by_mpi();

// MPI_Init_thread (funneled: only the main thread calls MPI) on
// construction, MPI_Finalize on destruction. One per process, in main().
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
};

// The ranks of MPI_COMM_WORLD (an MpiSession must exist).
std::unique_ptr<Communicator> mpi_world_communicator();
// Sub-worlds of an MPI communicator: the ranks that pass the same `color`
// form one, ordered by their rank in `parent` (MPI_Comm_split). Tests use
// it to train 4 ranks, then resume on 2 of them.
std::unique_ptr<Communicator> mpi_split_communicator(Communicator& parent, int color);

// Ends every rank of the job at once (MPI_Abort; without MPI, exit). What
// lory_train does when a rank throws: the others may be waiting in a
// collective for it and would otherwise hang.
[[noreturn]] void abort_job(int exit_code);

}  // namespace lory::train
