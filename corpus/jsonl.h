// jsonl.h — streaming JSONL corpus reader: one {"text", "domain", "source"}
// object per line, plain or compressed (.gz .xz .zst .bz2), read a block at a
// time so memory does not grow with the file. Lines are parsed with simdjson.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "corpus/corpus.h"

namespace lory::corpus {

class JsonlReader {
 public:
  explicit JsonlReader(const std::string& path);
  ~JsonlReader();
  JsonlReader(const JsonlReader&) = delete;
  JsonlReader& operator=(const JsonlReader&) = delete;

  // Reads the next non-empty line into `out`; false at the end of the file.
  // A line that is not an object with a string "text" throws naming the
  // file and the line number; "domain" and "source" are optional strings.
  bool next(CorpusLine& out);
  int64_t line_number() const { return line_; }
  int64_t bytes_read() const { return bytes_; }  // uncompressed bytes consumed so far

 private:
  bool next_line(std::string& line);
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
  std::string buffer_;
  size_t pos_ = 0;
  bool eof_ = false;
  int64_t line_ = 0, bytes_ = 0;
};

}  // namespace lory::corpus
