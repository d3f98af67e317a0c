// The safetensors header: parsing with every check the reference `safetensors` package makes,
// and more (duplicate names, unknown fields, overflow). No libtorch here, so the fuzz target and
// the inspect verb stay light.
//
// File layout: u64 little-endian N | N bytes of UTF-8 JSON | data section. Offsets in the JSON
// are relative to the data section, which starts at 8 + N.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "mergesweep/io/dtype.hpp"

namespace ms::io {

inline constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;  // the reference's limit

struct TensorEntry {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0;  // relative to the data section
  std::uint64_t end = 0;

  std::uint64_t nbytes() const noexcept { return end - begin; }
  std::int64_t numel() const noexcept;
};

struct SafetensorsHeader {
  std::uint64_t header_len = 0;              // N, the JSON length including padding
  std::vector<TensorEntry> tensors;          // sorted by begin offset (file order)
  std::map<std::string, std::string> metadata;

  std::uint64_t data_offset() const noexcept { return 8 + header_len; }
  std::uint64_t data_bytes() const noexcept;
  // nullptr when absent.
  const TensorEntry* find(std::string_view name) const noexcept;

 private:
  friend SafetensorsHeader parse_safetensors_header(const std::uint8_t*, std::size_t, std::uint64_t,
                                                    const std::string&);
  std::map<std::string, std::size_t, std::less<>> by_name_;
};

// Parses and validates the header of a file of `file_size` bytes whose first `available` bytes
// are at `bytes` (available >= min(file_size, 8 + N) is required to see the whole header; the
// whole mapped file is the usual argument). Throws ms::Error naming `path` and the tensor or field.
SafetensorsHeader parse_safetensors_header(const std::uint8_t* bytes, std::size_t available,
                                           std::uint64_t file_size, const std::string& path);

// Offset of the first byte that is not valid UTF-8, or npos.
std::size_t find_invalid_utf8(std::string_view text) noexcept;

}  // namespace ms::io
