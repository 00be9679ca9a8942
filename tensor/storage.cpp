// storage.cpp — storage memory comes from, and goes back to, the device's backend.
#include "tensor/storage.h"

#include "tensor/backend.h"

namespace lory {

Storage::Storage(size_t n, Device d) : nbytes(n), device(d) {
  data = n ? backend_for(d).allocate(n) : nullptr;
}

Storage::~Storage() {
  if (data) backend_for(device).deallocate(data, nbytes);
}

}  // namespace lory
