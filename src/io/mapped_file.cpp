#include "mergesweep/io/mapped_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "mergesweep/core/error.hpp"

namespace ms::io {

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, "", std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    fail(path, "", std::string("cannot stat: ") + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "", "not a regular file");
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  std::uint8_t* data = nullptr;
  if (size > 0) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      fail(path, "", std::string("cannot mmap: ") + std::strerror(err));
    }
    data = static_cast<std::uint8_t*>(p);
  }
  ::close(fd);  // the mapping outlives the descriptor
  return std::shared_ptr<MappedFile>(new MappedFile(path, data, size));
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(data_, size_);
}

void MappedFile::release(std::uint64_t offset, std::uint64_t len) const noexcept {
  if (data_ == nullptr || len == 0) return;
  const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  const std::uint64_t start = (offset + page - 1) / page * page;  // whole pages only: neighbours
  const std::uint64_t end = (offset + len) / page * page;          // may still be in use
  if (end > start) ::madvise(data_ + start, end - start, MADV_DONTNEED);
}

void MappedFile::advise_sequential(std::uint64_t offset, std::uint64_t len) const noexcept {
  if (data_ == nullptr || len == 0) return;
  const long page = ::sysconf(_SC_PAGESIZE);
  const std::uint64_t start = offset / page * page;
  ::madvise(data_ + start, offset + len - start, MADV_SEQUENTIAL);
  ::madvise(data_ + start, offset + len - start, MADV_WILLNEED);
}

}  // namespace ms::io
