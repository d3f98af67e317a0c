#include "pack_file.hpp"

#include <cstdio>

#include "mergesweep/core/error.hpp"
#include "mergesweep/io/fs_util.hpp"
#include "pack_checks.hpp"

namespace ms::eval::detail {

h5::Handle open_pack(const std::string& path, const char* format, std::int64_t min_version,
                     std::int64_t max_version, std::int64_t* version) {
  h5::Handle f = h5::open_read(path);
  const std::string found = h5::read_string_attr(f, "format", path);
  if (found != format) fail(path, "attribute format", "expected '" + std::string(format) + "', found '" + found + "'");
  const std::int64_t v = h5::read_int_attr(f, "format_version", path);
  if (v < min_version || v > max_version) {
    const std::string reads = min_version == max_version
                                  ? std::to_string(min_version)
                                  : std::to_string(min_version) + " to " + std::to_string(max_version);
    fail(path, "attribute format_version", "unsupported version " + std::to_string(v) + "; this mergesweep reads " + reads);
  }
  if (version) *version = v;
  return f;
}

void write_pack(const std::string& path, const char* format, std::int64_t version,
                const std::function<void(const h5::Handle&)>& body) {
  const std::string tmp = io::temp_sibling(path);
  try {
    h5::Handle f = h5::create_truncate(tmp, path);
    h5::write_string_attr(f, "format", format, path);
    h5::write_int_attr(f, "format_version", version, path);
    body(f);
    h5::flush(f, path, "");
    f.close();
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  io::rename_into_place(tmp, path);
}

std::vector<std::int64_t> read_offsets(const h5::Handle& f, const char* offsets_name, std::size_t rows,
                                       std::size_t total, const std::string& path, const char* unit) {
  std::vector<std::int64_t> off = h5::read_i64(f, offsets_name, path);
  check_offsets(off, rows, total, path, offsets_name, unit);
  return off;
}

Ragged<std::int32_t> read_ragged_i32(const h5::Handle& f, const char* values_name, const char* offsets_name,
                                     std::size_t rows, const std::string& path, const char* unit) {
  Ragged<std::int32_t> r;
  r.values = h5::read_i32(f, values_name, path);
  r.offsets = read_offsets(f, offsets_name, rows, r.values.size(), path, unit);
  return r;
}

void write_ragged_i32(const h5::Handle& f, const char* values_name, const char* offsets_name,
                      const Ragged<std::int32_t>& r, const std::string& path) {
  h5::write_i32(f, values_name, r.values, path);
  h5::write_i64(f, offsets_name, r.offsets, path);
}

std::vector<std::string> read_ragged_bytes(const h5::Handle& f, const char* values_name, const char* offsets_name,
                                           std::size_t rows, const std::string& path, const char* unit) {
  const std::vector<std::uint8_t> bytes = h5::read_u8(f, values_name, path);
  const std::vector<std::int64_t> off = read_offsets(f, offsets_name, rows, bytes.size(), path, unit);
  std::vector<std::string> out(rows);
  for (std::size_t i = 0; i < rows; ++i)
    out[i].assign(reinterpret_cast<const char*>(bytes.data()) + off[i], static_cast<std::size_t>(off[i + 1] - off[i]));
  return out;
}

void write_ragged_bytes(const h5::Handle& f, const char* values_name, const char* offsets_name,
                        const std::vector<std::string>& rows, const std::string& path) {
  std::vector<std::uint8_t> bytes;
  std::vector<std::int64_t> off{0};
  for (const std::string& r : rows) {
    bytes.insert(bytes.end(), r.begin(), r.end());
    off.push_back(static_cast<std::int64_t>(bytes.size()));
  }
  h5::write_u8(f, values_name, bytes, path);
  h5::write_i64(f, offsets_name, off, path);
}

}  // namespace ms::eval::detail
