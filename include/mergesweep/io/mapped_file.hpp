// A read-only view of a whole file through mmap. Shared (std::shared_ptr) so that tensor views
// into the mapping keep it alive after the SafetensorsFile that made them is gone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace ms::io {

class MappedFile {
 public:
  // Throws ms::Error naming the path when the file cannot be opened or mapped.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  // Mapped copy-on-write: a stray in-place write through a view changes private pages, never
  // the file, and never faults.
  std::uint8_t* data() const noexcept { return data_; }
  std::uint64_t size() const noexcept { return size_; }
  const std::string& path() const noexcept { return path_; }

  // Hint the kernel that [offset, offset+len) will be read soon, in order.
  void advise_sequential(std::uint64_t offset, std::uint64_t len) const noexcept;
  // Drops the whole pages inside [offset, offset+len) from this process (MADV_DONTNEED).
  void release(std::uint64_t offset, std::uint64_t len) const noexcept;

 private:
  MappedFile(std::string path, std::uint8_t* data, std::uint64_t size)
      : path_(std::move(path)), data_(data), size_(size) {}
  std::string path_;
  std::uint8_t* data_ = nullptr;
  std::uint64_t size_ = 0;
};

}  // namespace ms::io
