// The HDF5 side shared by the task and probe pack files: the identifying header (format name and
// version attributes) and ragged arrays (a flat value array plus an offsets array), read and
// validated in one place. Internal to src/eval.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "h5/h5.hpp"

namespace ms::eval::detail {

// Opens a pack read-only and checks its `format` and `format_version` attributes (a version in
// [min_version, max_version]); `version` receives the version found.
h5::Handle open_pack(const std::string& path, const char* format, std::int64_t min_version,
                     std::int64_t max_version, std::int64_t* version = nullptr);
// Writes a pack under a temporary name in the same folder, then renames it to `path` (removed on
// failure): the `format` and `format_version` attributes, then whatever `body` writes.
void write_pack(const std::string& path, const char* format, std::int64_t version,
                const std::function<void(const h5::Handle&)>& body);

// n rows of a ragged array: row i is values[offsets[i], offsets[i+1]).
template <class T>
struct Ragged {
  std::vector<T> values;
  std::vector<std::int64_t> offsets{0};

  std::size_t rows() const { return offsets.size() - 1; }
  std::vector<T> row(std::size_t i) const {
    return std::vector<T>(values.begin() + offsets[i], values.begin() + offsets[i + 1]);
  }
  void push_row(const std::vector<T>& r) {
    values.insert(values.end(), r.begin(), r.end());
    offsets.push_back(static_cast<std::int64_t>(values.size()));
  }
};

// Reads the offsets dataset `offsets_name` of `rows` rows over `total` entries and validates it
// (n+1 entries, starts at 0, never decreases, ends at `total`); `unit` names a row in errors.
std::vector<std::int64_t> read_offsets(const h5::Handle& f, const char* offsets_name, std::size_t rows,
                                       std::size_t total, const std::string& path, const char* unit);
// Reads int32 values and their offsets, validated as above.
Ragged<std::int32_t> read_ragged_i32(const h5::Handle& f, const char* values_name, const char* offsets_name,
                                     std::size_t rows, const std::string& path, const char* unit);
void write_ragged_i32(const h5::Handle& f, const char* values_name, const char* offsets_name,
                      const Ragged<std::int32_t>& r, const std::string& path);
// Byte strings stored as uint8 values plus offsets (e.g. a tokenizer's byte table).
std::vector<std::string> read_ragged_bytes(const h5::Handle& f, const char* values_name, const char* offsets_name,
                                           std::size_t rows, const std::string& path, const char* unit);
void write_ragged_bytes(const h5::Handle& f, const char* values_name, const char* offsets_name,
                        const std::vector<std::string>& rows, const std::string& path);

}  // namespace ms::eval::detail
