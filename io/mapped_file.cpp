// mapped_file.cpp — see mapped_file.h.
#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "tensor/error.h"

namespace lory::io {

MappedFile::MappedFile(const std::string& path, const std::string& what) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  LORY_CHECK(fd >= 0, what, " ", path, ": cannot open: ", std::strerror(errno));
  struct stat st {};
  const bool stat_ok = ::fstat(fd, &st) == 0;
  const int stat_err = errno;
  if (!stat_ok || !S_ISREG(st.st_mode)) {  // a directory opens, then fails to map
    ::close(fd);
    fail(what, " ", path, ": cannot open: ", stat_ok ? "not a regular file" : std::strerror(stat_err));
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* m = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
    const int err = errno;
    ::close(fd);
    LORY_CHECK(m != MAP_FAILED, what, " ", path, ": mmap failed: ", std::strerror(err));
    data_ = static_cast<const unsigned char*>(m);
  } else {
    ::close(fd);
  }
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<unsigned char*>(data_), size_);
}

}  // namespace lory::io
