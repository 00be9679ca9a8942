// jsonl.cpp — see jsonl.h.
#include "corpus/jsonl.h"

#include <archive.h>
#include <archive_entry.h>
#include <simdjson.h>

#include <filesystem>

#include "tensor/error.h"

namespace lory::corpus {

// libarchive's "raw" format with every decompression filter reads a plain
// file as it is and a compressed one decompressed, through one interface.
struct JsonlReader::Impl {
  archive* a = nullptr;
  simdjson::ondemand::parser parser;
  ~Impl() {
    if (a) archive_read_free(a);
  }
};

JsonlReader::JsonlReader(const std::string& path) : impl_(std::make_unique<Impl>()), path_(path) {
  // libarchive recognises a format from the first byte, so an empty file
  // failed with "Unrecognized archive format": it is an empty corpus.
  std::error_code ec;
  if (std::filesystem::is_regular_file(path, ec) && std::filesystem::file_size(path, ec) == 0 && !ec) {
    eof_ = true;
    return;
  }
  impl_->a = archive_read_new();
  archive_read_support_filter_all(impl_->a);
  archive_read_support_format_raw(impl_->a);
  archive_entry* entry = nullptr;
  if (archive_read_open_filename(impl_->a, path.c_str(), 1 << 20) != ARCHIVE_OK ||
      archive_read_next_header(impl_->a, &entry) != ARCHIVE_OK)
    fail(path, ": cannot open corpus file: ", archive_error_string(impl_->a) ? archive_error_string(impl_->a) : "");
}

JsonlReader::~JsonlReader() = default;

bool JsonlReader::next_line(std::string& line) {
  for (;;) {
    const size_t nl = buffer_.find('\n', pos_);
    if (nl != std::string::npos) {
      line.assign(buffer_, pos_, nl - pos_);
      pos_ = nl + 1;
      return true;
    }
    if (eof_) {
      if (pos_ >= buffer_.size()) return false;
      line.assign(buffer_, pos_, std::string::npos);
      pos_ = buffer_.size();
      return true;
    }
    buffer_.erase(0, pos_);
    pos_ = 0;
    char chunk[1 << 16];
    const la_ssize_t n = archive_read_data(impl_->a, chunk, sizeof chunk);
    if (n < 0) fail(path_, ": read failed: ", archive_error_string(impl_->a));
    if (n == 0) eof_ = true;
    buffer_.append(chunk, static_cast<size_t>(n));
    bytes_ += n;
  }
}

bool JsonlReader::next(CorpusLine& out) {
  std::string line;
  for (;;) {
    if (!next_line(line)) return false;
    ++line_;
    if (line.find_first_not_of(" \t\r") != std::string::npos) break;
  }
  const simdjson::padded_string padded(line);
  try {
    simdjson::ondemand::document doc = impl_->parser.iterate(padded);
    simdjson::ondemand::object obj = doc.get_object();
    bool has_text = false;
    out.domain.clear();
    out.source.clear();
    for (auto field : obj) {
      const std::string_view key = field.unescaped_key();
      if (key == "text") {
        out.text = std::string(std::string_view(field.value().get_string()));
        has_text = true;
      } else if (key == "domain") {
        out.domain = std::string(std::string_view(field.value().get_string()));
      } else if (key == "source") {
        out.source = std::string(std::string_view(field.value().get_string()));
      }
    }
    LORY_CHECK(has_text, path_, ":", line_, ": expected an object with a string \"text\"");
  } catch (const simdjson::simdjson_error& e) {
    fail(path_, ":", line_, ": not valid JSON (", e.what(), "); expected {\"text\": ..., \"domain\": ...}");
  }
  return true;
}

}  // namespace lory::corpus
