// atomic_file.h — write a file so that a crash leaves the old one or the new
// one, never half of either.
//
// The bytes go to a temporary file in the same directory, which is fsynced
// and then renamed over the target (rename is atomic within a filesystem);
// the directory is fsynced so the rename itself survives a power cut.
#pragma once

#include <cstdio>
#include <functional>
#include <string>

namespace lory::io {

// Writes `path` atomically; `write` gets the FILE* of the temporary file.
// Throws naming the path and the system error on failure (the temporary is removed).
void write_file_atomically(const std::string& path, const std::function<void(std::FILE*)>& write);
void write_file_atomically(const std::string& path, const std::string& contents);
// fsyncs a directory, so that renames into it survive a power cut (best effort).
void fsync_directory(const std::string& dir);

}  // namespace lory::io
