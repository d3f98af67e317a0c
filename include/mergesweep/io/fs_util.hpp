// Small POSIX file helpers with ms::Error reporting: atomic replace, full writes, path checks.
#pragma once

#include <cstdint>
#include <string>

namespace ms::io {

// "dir/name" -> "dir/.name.tmp-<pid>-<counter>": same directory, so rename() is atomic.
std::string temp_sibling(const std::string& path);
void rename_into_place(const std::string& from, const std::string& to);
void write_all_at(int fd, const void* data, std::uint64_t nbytes, std::uint64_t offset, const std::string& path);
// Reads a whole (small) text file; throws naming the path.
std::string read_text_file(const std::string& path);
// Writes a whole text file atomically (temporary name, fsync, rename).
void write_text_file(const std::string& path, const std::string& text);
bool path_exists(const std::string& path);
bool is_directory(const std::string& path);
// True when `candidate` (after resolving symlinks) lies inside directory `root`.
bool resolves_inside(const std::string& root, const std::string& candidate);
void fsync_directory(const std::string& dir);

}  // namespace ms::io
