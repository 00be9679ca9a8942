// job.h — how a program starts as one process, or as one rank of a
// data-parallel job, and how a failure on one rank ends them all.
//
//   lory_train --config X                   one process (the single-process communicator)
//   mpirun -np 4 lory_train --config X      four ranks (MPI; mpi_communicator.h)
//   srun --mpi=pmix lory_train --config X   the same under Slurm
//
// run_job initialises MPI only when an MPI launcher started the process,
// hands the body the communicator of its world, and turns an exception on
// any rank into that rank's message on stderr and the end of the whole job
// (MPI_Abort): the other ranks are likely waiting for it in a collective
// and would otherwise hang until the job's time limit.
#pragma once

#include <functional>

#include "train/communicator.h"

namespace lory::train {

// Runs body(comm) and returns its exit code. `program` prefixes error
// messages ("lory_train: rank 1 of 4: ...").
int run_job(int* argc, char*** argv, const char* program, const std::function<int(Communicator&)>& body);

}  // namespace lory::train
