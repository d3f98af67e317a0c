#include "mergesweep/io/fs_util.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "mergesweep/core/error.hpp"

namespace ms::io {

std::string temp_sibling(const std::string& path) {
  static std::atomic<unsigned> counter{0};
  const auto slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  return dir + "." + name + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

void rename_into_place(const std::string& from, const std::string& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0) {
    const int err = errno;
    fail(to, "", std::string("cannot rename the finished temporary file into place: ") + std::strerror(err));
  }
  const auto slash = to.find_last_of('/');
  fsync_directory(slash == std::string::npos ? "." : to.substr(0, slash));
}

void write_all_at(int fd, const void* data, std::uint64_t nbytes, std::uint64_t offset, const std::string& path) {
  const auto* p = static_cast<const char*>(data);
  while (nbytes > 0) {
    const std::size_t chunk = nbytes > (1ull << 30) ? (1ull << 30) : static_cast<std::size_t>(nbytes);
    const ssize_t n = ::pwrite(fd, p, chunk, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(path, "", std::string("write failed: ") + std::strerror(errno));
    }
    p += n;
    offset += static_cast<std::uint64_t>(n);
    nbytes -= static_cast<std::uint64_t>(n);
  }
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "", std::string("cannot open: ") + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_text_file(const std::string& path, const std::string& text) {
  const std::string tmp = temp_sibling(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(path, "", std::string("cannot create: ") + std::strerror(errno));
  try {
    write_all_at(fd, text.data(), text.size(), 0, path);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::fsync(fd);
  ::close(fd);
  rename_into_place(tmp, path);
}

bool path_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool resolves_inside(const std::string& root, const std::string& candidate) {
  char root_buf[PATH_MAX];
  char cand_buf[PATH_MAX];
  if (::realpath(root.c_str(), root_buf) == nullptr) return false;
  if (::realpath(candidate.c_str(), cand_buf) == nullptr) return false;
  std::string r(root_buf);
  const std::string c(cand_buf);
  if (r.back() != '/') r += '/';
  return c.compare(0, r.size(), r) == 0;
}

void fsync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // best effort: durability of the rename, not correctness
  ::fsync(fd);
  ::close(fd);
}

}  // namespace ms::io
