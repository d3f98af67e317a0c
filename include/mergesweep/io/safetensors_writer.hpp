// Writes safetensors files byte-for-byte as the reference `safetensors` package lays them out:
// tensors ordered by dtype (the crate's Dtype order, widest first) then by name, compact JSON
// header with `__metadata__` first, padded with spaces to a multiple of 8 bytes.
//
// The layout is computed from names, dtypes and shapes alone, so a streaming producer can open
// the file, then hand tensors over in any order (pwrite at their offsets), then commit. The file
// is written under a temporary name and renamed on commit; an uncommitted writer removes it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "mergesweep/io/dtype.hpp"
#include "mergesweep/io/safetensors_header.hpp"

namespace ms::io {

struct TensorSpec {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  std::uint64_t nbytes() const noexcept;
};

struct SafetensorsLayout {
  std::string header;                  // 8-byte length + padded JSON
  std::vector<TensorEntry> tensors;    // in file order, offsets relative to the data section
  std::uint64_t file_size() const noexcept;
  const TensorEntry& entry(const std::string& name) const;  // throws if absent
};

// Throws ms::Error (naming `path`) on duplicate names or an empty name.
SafetensorsLayout plan_safetensors_layout(std::vector<TensorSpec> specs,
                                          const std::map<std::string, std::string>& metadata,
                                          const std::string& path);

class SafetensorsWriter {
 public:
  SafetensorsWriter(std::string path, std::vector<TensorSpec> specs,
                    const std::map<std::string, std::string>& metadata = {});
  ~SafetensorsWriter();  // removes the temporary file unless committed
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // `nbytes` must equal the tensor's size in the layout.
  void write(const std::string& name, const void* data, std::uint64_t nbytes);
  // Checks every tensor was written, fsyncs, renames into place.
  void commit();

  const SafetensorsLayout& layout() const noexcept { return layout_; }
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
  std::string tmp_path_;
  SafetensorsLayout layout_;
  std::vector<bool> written_;
  int fd_ = -1;
  bool committed_ = false;
};

// Convenience: all tensors at once.
struct TensorBytes {
  TensorSpec spec;
  const void* data = nullptr;
};
void write_safetensors(const std::string& path, const std::vector<TensorBytes>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace ms::io
