#include "mergesweep/io/safetensors_file.hpp"

#include "mergesweep/core/error.hpp"

namespace ms::io {

std::shared_ptr<const SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  auto file = MappedFile::open(path);
  auto header = parse_safetensors_header(file->data(), file->size(), file->size(), path);
  return std::shared_ptr<const SafetensorsFile>(new SafetensorsFile(std::move(file), std::move(header)));
}

const TensorEntry& SafetensorsFile::require(std::string_view name) const {
  const TensorEntry* e = header_.find(name);
  if (e == nullptr) fail(path(), "'" + std::string(name) + "'", "tensor not found in this file");
  return *e;
}

void SafetensorsFile::release(const TensorEntry& e) const noexcept {
  file_->release(header_.data_offset() + e.begin, e.nbytes());
}

void SafetensorsFile::advise_sequential() const noexcept {
  file_->advise_sequential(header_.data_offset(), header_.data_bytes());
}

}  // namespace ms::io
