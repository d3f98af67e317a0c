// ARCHIVE.lock beside the archive, held with flock(LOCK_EX) for as long as a Writer is open.
// The kernel drops flock locks when the holder dies, so a killed writer never leaves a stale
// lock; HDF5's own file lock cannot serve here because an SWMR writer releases it.
#pragma once

#include <string>

namespace ms::archive {

class LockFile {
 public:
  // Takes the lock of `archive` or throws ms::Error naming the archive and the holder's pid.
  // `wait_s` > 0 retries that long first (a reader clearing a dead writer's mark holds the lock
  // for milliseconds; a writer should not fail because of it).
  static LockFile acquire(const std::string& archive, double wait_s = 0);
  LockFile() = default;
  LockFile(LockFile&& o) noexcept : fd_(o.fd_), path_(std::move(o.path_)) { o.fd_ = -1; }
  LockFile& operator=(LockFile&& o) noexcept;
  ~LockFile() { release(); }
  // Unlinks the lock file (while still holding it) and closes it.
  void release();

  static std::string lock_path(const std::string& archive) { return archive + ".lock"; }
  // Pid of the live process holding the lock of `archive`, or 0 (reads /proc/locks, takes no lock).
  static long holder(const std::string& archive);

 private:
  static LockFile try_acquire(const std::string& archive);
  int fd_ = -1;
  std::string path_;
};

}  // namespace ms::archive
