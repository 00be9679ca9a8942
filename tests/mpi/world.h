// world.h — the MPI world the data-parallel tests run in (tests/mpi/main.cpp).
#pragma once

#include "train/communicator.h"

namespace lory::test {
train::Communicator& world();
}  // namespace lory::test
