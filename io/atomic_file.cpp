// atomic_file.cpp — see atomic_file.h.
#include "io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "tensor/error.h"

namespace lory::io {

namespace {
[[noreturn]] void fail_errno(const std::string& what, const std::string& path) {
  fail(path, ": ", what, ": ", std::strerror(errno));
}
}  // namespace

void write_file_atomically(const std::string& path, const std::function<void(std::FILE*)>& write) {
  const std::filesystem::path target(path);
  const std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : std::filesystem::path(".");
  std::string tmp = (dir / ("." + target.filename().string() + ".tmp.XXXXXX")).string();
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) fail_errno("cannot create a temporary file in " + dir.string(), path);
  std::FILE* f = ::fdopen(fd, "wb");
  if (!f) {
    ::close(fd);
    ::unlink(tmp.c_str());
    fail_errno("fdopen failed", path);
  }
  try {
    write(f);
    if (std::fflush(f) != 0) fail_errno("write failed", path);
    if (::fsync(::fileno(f)) != 0) fail_errno("fsync failed", path);
  } catch (...) {
    std::fclose(f);
    ::unlink(tmp.c_str());
    throw;
  }
  if (std::fclose(f) != 0) {
    ::unlink(tmp.c_str());
    fail_errno("close failed", path);
  }
  ::chmod(tmp.c_str(), 0644);  // mkstemp makes 0600; checkpoints are ordinary files
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    fail_errno("rename of the temporary file failed", path);
  }
  fsync_directory(dir);
}

void fsync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void write_file_atomically(const std::string& path, const std::string& contents) {
  write_file_atomically(path, [&](std::FILE* f) {
    if (!contents.empty() && std::fwrite(contents.data(), 1, contents.size(), f) != contents.size())
      fail(path, ": write failed: ", std::strerror(errno));
  });
}

}  // namespace lory::io
