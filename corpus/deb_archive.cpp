// deb_archive.cpp — see deb_archive.h.
#include "corpus/deb_archive.h"

#include <archive.h>
#include <archive_entry.h>

#include <memory>

#include "tensor/error.h"

namespace lory::corpus {

namespace {

using Reader = std::unique_ptr<archive, decltype(&archive_read_free)>;

Reader new_reader(bool raw) {
  Reader a(archive_read_new(), &archive_read_free);
  archive_read_support_filter_all(a.get());
  if (raw) {
    archive_read_support_format_raw(a.get());
  } else {
    archive_read_support_format_ar(a.get());
    archive_read_support_format_tar(a.get());
  }
  return a;
}

std::string read_entry(archive* a, const std::string& what) {
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const la_ssize_t n = archive_read_data(a, buf, sizeof buf);
    if (n < 0) fail(what, ": ", archive_error_string(a));
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

bool is_tarball(const std::string& path) {
  for (const char* ext : {".tar.xz", ".tar.gz", ".tar.bz2", ".tar.zst", ".tgz"})
    if (path.ends_with(ext)) return true;
  return false;
}

// Walks a tar archive held in memory; `prefix` names where it came from.
void walk_tar(const std::string& bytes, const std::string& prefix, const std::string& what,
              const ArchiveVisitor& visitor) {
  Reader a = new_reader(false);
  if (archive_read_open_memory(a.get(), bytes.data(), bytes.size()) != ARCHIVE_OK)
    fail(what, ": ", archive_error_string(a.get()));
  archive_entry* entry = nullptr;
  for (;;) {
    const int r = archive_read_next_header(a.get(), &entry);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) fail(what, ": ", archive_error_string(a.get()));
    if (archive_entry_filetype(entry) != AE_IFREG) continue;
    std::string path = archive_entry_pathname(entry);
    if (path.rfind("./", 0) == 0) path = path.substr(2);
    path = prefix + path;
    if (is_tarball(path) && visitor.descend(path)) {
      walk_tar(read_entry(a.get(), what + ": " + path), path + "/", what + ": " + path, visitor);
      continue;
    }
    const bool gz = path.ends_with(".gz");
    const std::string name = gz ? path.substr(0, path.size() - 3) : path;
    if (!visitor.want(name)) continue;
    std::string content = read_entry(a.get(), what + ": " + path);
    visitor.visit(name, gz ? decompress(content, what + ": " + path) : std::move(content));
  }
}

}  // namespace

std::string decompress(const std::string& bytes, const std::string& what) {
  Reader a = new_reader(true);
  archive_entry* entry = nullptr;
  if (archive_read_open_memory(a.get(), bytes.data(), bytes.size()) != ARCHIVE_OK ||
      archive_read_next_header(a.get(), &entry) != ARCHIVE_OK)
    fail(what, ": cannot decompress: ", archive_error_string(a.get()));
  return read_entry(a.get(), what);
}

void read_deb(const std::string& deb_path, const ArchiveVisitor& visitor) {
  Reader a = new_reader(false);
  if (archive_read_open_filename(a.get(), deb_path.c_str(), 1 << 20) != ARCHIVE_OK)
    fail(deb_path, ": cannot open package: ", archive_error_string(a.get()));
  archive_entry* entry = nullptr;
  bool found = false;
  for (;;) {
    const int r = archive_read_next_header(a.get(), &entry);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) fail(deb_path, ": not a Debian package: ", archive_error_string(a.get()));
    const std::string name = archive_entry_pathname(entry);
    if (name.rfind("data.tar", 0) != 0) continue;
    found = true;
    walk_tar(read_entry(a.get(), deb_path), "", deb_path, visitor);
  }
  LORY_CHECK(found, deb_path, ": not a Debian package (no data.tar member)");
}

}  // namespace lory::corpus
