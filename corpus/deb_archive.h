// deb_archive.h — reading files out of Debian packages without installing
// or unpacking them (libarchive; no root, nothing written to disk).
//
// A .deb is an ar archive whose data.tar.{xz,zst,gz} holds the files. Files
// are visited in the order the package stores them; a file whose name ends
// in .gz is handed over decompressed (with ".gz" dropped from its name), and
// a file that is itself a tarball (*.tar.xz, *.tar.gz, ...) can be opened
// as a nested archive, its members named "<tarball>/<member>".
#pragma once

#include <functional>
#include <string>

namespace lory::corpus {

struct ArchiveVisitor {
  // Decides from a path (after .gz stripping) whether the content is wanted.
  std::function<bool(const std::string& path)> want;
  // Gets each wanted file's path and bytes.
  std::function<void(const std::string& path, std::string&& bytes)> visit;
  // Tarballs inside the package to descend into (e.g. glibc's source tarball).
  std::function<bool(const std::string& path)> descend = [](const std::string&) { return false; };
};

// Visits the files of `deb_path`; throws naming the package and the problem.
void read_deb(const std::string& deb_path, const ArchiveVisitor& visitor);

// Decompresses a gzip (or xz, bzip2, zstd) stream held in memory.
std::string decompress(const std::string& bytes, const std::string& what);

}  // namespace lory::corpus
