#include "lock_file.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <chrono>
#include <thread>
#include <cstring>
#include <fstream>
#include <sstream>

#include "mergesweep/core/error.hpp"

namespace ms::archive {

LockFile& LockFile::operator=(LockFile&& o) noexcept {
  if (this != &o) {
    release();
    fd_ = o.fd_;
    path_ = std::move(o.path_);
    o.fd_ = -1;
  }
  return *this;
}

LockFile LockFile::acquire(const std::string& archive, double wait_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(wait_s);
  while (true) {
    try {
      return try_acquire(archive);
    } catch (const Error&) {
      if (wait_s <= 0 || std::chrono::steady_clock::now() >= deadline) throw;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

LockFile LockFile::try_acquire(const std::string& archive) {
  const std::string lp = lock_path(archive);
  // Loop: a holder unlinks the file on release; if we locked an unlinked inode, retry on the new one.
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int fd = ::open(lp.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) fail(archive, "lock", "cannot create the lock file " + lp + ": " + std::strerror(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int e = errno;
      char buf[256] = {0};
      const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
      ::close(fd);
      std::string who = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
      while (!who.empty() && (who.back() == '\n' || who.back() == ' ')) who.pop_back();
      if (e == EWOULDBLOCK)
        fail(archive, "lock",
             "another process is writing this archive (" + (who.empty() ? std::string("holder unknown") : who) +
                 ", lock file " + lp + " held); only one writer at a time: wait for it to finish or stop it");
      fail(archive, "lock", "cannot lock " + lp + ": " + std::strerror(e));
    }
    struct stat a, b;
    if (::fstat(fd, &a) == 0 && ::stat(lp.c_str(), &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
      char host[256] = {0};
      ::gethostname(host, sizeof host - 1);
      const std::string who = "pid " + std::to_string(::getpid()) + " on " + host + "\n";
      if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, who.data(), who.size(), 0) < 0) {
        // The pid is informative only; the flock is what excludes.
      }
      LockFile l;
      l.fd_ = fd;
      l.path_ = lp;
      return l;
    }
    ::close(fd);
  }
  fail(archive, "lock", "cannot take the lock file " + lp + " (it keeps being replaced)");
}

void LockFile::release() {
  if (fd_ < 0) return;
  ::unlink(path_.c_str());
  ::close(fd_);
  fd_ = -1;
}

long LockFile::holder(const std::string& archive) {
  struct stat st;
  if (::stat(lock_path(archive).c_str(), &st) != 0) return 0;
  std::ifstream in("/proc/locks");
  std::string line;
  // Lines look like: "1: FLOCK  ADVISORY  WRITE 12345 08:01:1234567 0 EOF".
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::string num, kind, adv, mode, dev;
    long pid = 0;
    if (!(ss >> num >> kind >> adv >> mode >> pid >> dev)) continue;
    if (kind != "FLOCK") continue;
    // "MAJOR:MINOR:INODE", device numbers in hex: match the device too, or a lock on a file with
    // the same inode number on another file system would be taken for ours.
    unsigned maj = 0, mnr = 0;
    unsigned long long ino = 0;
    if (std::sscanf(dev.c_str(), "%x:%x:%llu", &maj, &mnr, &ino) != 3) continue;
    if (ino == static_cast<unsigned long long>(st.st_ino) && maj == major(st.st_dev) && mnr == minor(st.st_dev))
      return pid;
  }
  return 0;
}

}  // namespace ms::archive
