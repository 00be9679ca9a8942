// nccl_communicator.h — the collectives on CUDA tensors, over NCCL.
//
// One rank per GPU. The ranks are those of an MPI communicator (how the job
// started, mpi_communicator.h): rank 0 makes NCCL's unique id and MPI
// broadcasts it, then every rank joins the NCCL communicator on its GPU.
// NCCL runs on a stream of its own, so a bucket's reduce-scatter overlaps
// the backward kernels still running on the compute stream (cuda/stream.h):
//
//   compute stream  ... backward kernels ... | event A |  more backward ...  | wait B | add into shard
//   NCCL stream                        wait A | reduce-scatter bucket | event B
//
// A PendingCollective's wait() makes the compute stream wait for event B
// (the host goes on); test() asks whether B has happened. Host values and
// CPU buffers (checkpoints) still travel over MPI.
//
// A build without NCCL compiles this too: nccl_compiled() is false and
// nccl_communicator() says that this build has no NCCL.
#pragma once

#include <memory>

#include "train/communicator.h"

namespace lory::train {

bool nccl_compiled();
// The world of `mpi` over NCCL, for CUDA buffers on `device` (`mpi` must
// outlive the result).
std::unique_ptr<Communicator> nccl_communicator(Communicator& mpi, Device device);

}  // namespace lory::train
