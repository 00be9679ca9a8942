// job.cpp — see job.h.
#include "train/job.h"

#include <cstdio>
#include <memory>
#include <optional>

#include "train/mpi_communicator.h"

namespace lory::train {

int run_job(int* argc, char*** argv, const char* program, const std::function<int(Communicator&)>& body) {
  std::optional<MpiSession> mpi;
  std::unique_ptr<Communicator> comm;
  try {
    if (launched_by_mpi()) {
      LORY_CHECK(mpi_compiled(), "an MPI launcher started this process, but this build has no MPI (install ",
                 "libopenmpi-dev and rebuild: CMake's 'lory: MPI' line says why it is off); every rank would train ",
                 "alone on the same files");
      mpi.emplace(argc, argv);
      comm = mpi_world_communicator();
    } else {
      comm = single_process_communicator();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 1;
  }
  try {
    const int code = body(*comm);
    comm.reset();  // before MPI_Finalize
    return code;
  } catch (const std::exception& e) {
    if (comm->world() == 1) {
      std::fprintf(stderr, "%s: %s\n", program, e.what());
      return 1;
    }
    std::fprintf(stderr, "%s: rank %d of %d: %s\n", program, comm->rank(), comm->world(), e.what());
    abort_job(1);  // ends every rank now
  }
}

}  // namespace lory::train
