// A validated, memory-mapped safetensors file. Tensors come out as zero-copy at::Tensor views
// whose deleter holds the mapping, so a view stays valid after the file object is dropped.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "mergesweep/io/mapped_file.hpp"
#include "mergesweep/io/safetensors_header.hpp"

namespace at { class Tensor; }

namespace ms::io {

class SafetensorsFile {
 public:
  // Maps and validates the whole header; throws ms::Error naming the file and tensor.
  static std::shared_ptr<const SafetensorsFile> open(const std::string& path);

  const std::string& path() const noexcept { return file_->path(); }
  const SafetensorsHeader& header() const noexcept { return header_; }
  std::uint64_t file_size() const noexcept { return file_->size(); }

  // Raw bytes of a tensor inside the mapping.
  const std::uint8_t* data(const TensorEntry& e) const noexcept {
    return file_->data() + header_.data_offset() + e.begin;
  }
  const TensorEntry& require(std::string_view name) const;  // throws naming file and tensor

  // Zero-copy view (copied only when the bytes are not aligned to the element size, which the
  // reference writer never produces). Throws for dtypes this libtorch has no type for.
  at::Tensor tensor(std::string_view name) const;
  at::Tensor tensor(const TensorEntry& e) const;

  void advise_sequential() const noexcept;
  // Gives the pages wholly inside the tensor's bytes back (MADV_DONTNEED): RSS drops, a later
  // read faults them in again from the page cache. Views stay valid.
  void release(const TensorEntry& e) const noexcept;

 private:
  SafetensorsFile(std::shared_ptr<MappedFile> file, SafetensorsHeader header)
      : file_(std::move(file)), header_(std::move(header)) {}
  std::shared_ptr<MappedFile> file_;
  SafetensorsHeader header_;
};

}  // namespace ms::io
