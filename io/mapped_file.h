// mapped_file.h — a read-only memory map of a whole file (shards, instances).
#pragma once

#include <cstddef>
#include <string>

namespace lory::io {

class MappedFile {
 public:
  // Throws "<what> <path>: cannot open: <reason>" (or mmap failed).
  MappedFile(const std::string& path, const std::string& what);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const unsigned char* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  const unsigned char* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace lory::io
