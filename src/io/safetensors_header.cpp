#include "mergesweep/io/safetensors_header.hpp"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "mergesweep/core/error.hpp"
#include "json_error.hpp"

namespace ms::io {
namespace {

using json = nlohmann::json;

std::uint64_t read_le_u64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::string sq(const std::string& s) { return "'" + s + "'"; }

// Parses the header JSON, rejecting duplicate keys at any depth (nlohmann would keep the last).
json parse_json_rejecting_duplicates(std::string_view text, const std::string& path) {
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  int duplicate_depth = 0;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start: open_objects.emplace_back(); break;
      case json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case json::parse_event_t::key:
        if (!open_objects.empty() && duplicate.empty() &&
            !open_objects.back().insert(parsed.get<std::string>()).second) {
          duplicate = parsed.get<std::string>();
          duplicate_depth = depth;
        }
        break;
      default: break;
    }
    return true;
  };
  json doc;
  try {
    doc = json::parse(text.begin(), text.end(), cb);
  } catch (const json::exception& e) {  // parse errors and number overflow alike
    fail(path, "header", "invalid JSON: " + detail::json_error_text(e));
  }
  if (!duplicate.empty()) {
    fail(path, duplicate_depth <= 1 ? sq(duplicate) : "header",
         "duplicate key " + sq(duplicate) + " in the header; every tensor name and metadata key must be unique");
  }
  return doc;
}

std::map<std::string, std::string> parse_metadata(const json& value, const std::string& path) {
  if (!value.is_object()) {
    fail(path, "__metadata__", std::string("must be an object of string to string, got ") + value.type_name());
  }
  std::map<std::string, std::string> out;
  for (const auto& [key, v] : value.items()) {
    if (!v.is_string()) {
      fail(path, "__metadata__." + key,
           std::string("metadata values must be strings, got ") + v.type_name());
    }
    out.emplace(key, v.get<std::string>());
  }
  return out;
}

std::uint64_t require_u64(const json& v, const std::string& path, const std::string& field, const char* what) {
  if (v.is_number_unsigned()) return v.get<std::uint64_t>();
  if (v.is_number_integer()) {
    fail(path, field, std::string(what) + " is negative (" + v.dump() + "); expected a non-negative integer");
  }
  fail(path, field, std::string(what) + " must be a non-negative integer, got " + v.dump());
}

TensorEntry parse_entry(const std::string& name, const json& v, const std::string& path) {
  const std::string field = sq(name);
  if (!v.is_object()) {
    fail(path, field, std::string("tensor entry must be an object with dtype, shape, data_offsets; got ") + v.type_name());
  }
  for (const auto& [key, _] : v.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      fail(path, field, "unknown field " + sq(key) + "; expected only dtype, shape, data_offsets");
    }
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!v.contains(key)) fail(path, field, std::string("missing field '") + key + "'");
  }
  TensorEntry e;
  e.name = name;
  const json& dt = v["dtype"];
  if (!dt.is_string()) fail(path, field, "dtype must be a string, got " + dt.dump());
  const auto dtype = dtype_from_name(dt.get<std::string>());
  if (!dtype) {
    fail(path, field, "unknown dtype " + sq(dt.get<std::string>()) +
                          "; expected one of F64 F32 F16 BF16 I64 I32 I16 I8 U64 U32 U16 U8 BOOL F8_E4M3 F8_E5M2");
  }
  e.dtype = *dtype;

  const json& shape = v["shape"];
  if (!shape.is_array()) fail(path, field, "shape must be an array of integers, got " + shape.dump());
  std::uint64_t numel = 1;
  bool overflow = false;
  for (const auto& d : shape) {
    const std::uint64_t dim = require_u64(d, path, field, "shape dimension");
    if (dim > static_cast<std::uint64_t>(INT64_MAX)) overflow = true;
    if (__builtin_mul_overflow(numel, dim, &numel)) overflow = true;
    e.shape.push_back(static_cast<std::int64_t>(dim));
  }
  std::uint64_t nbytes = 0;
  if (overflow || numel > static_cast<std::uint64_t>(INT64_MAX) ||
      __builtin_mul_overflow(numel, dtype_size(e.dtype), &nbytes)) {
    fail(path, field, "shape " + shape.dump() + " is too large: its byte size overflows 64 bits");
  }

  const json& off = v["data_offsets"];
  if (!off.is_array() || off.size() != 2) {
    fail(path, field, "data_offsets must be [begin, end], got " + off.dump());
  }
  e.begin = require_u64(off[0], path, field, "data_offsets begin");
  e.end = require_u64(off[1], path, field, "data_offsets end");
  if (e.end < e.begin) {
    fail(path, field, "data_offsets " + off.dump() + " end before begin");
  }
  if (e.end - e.begin != nbytes) {
    fail(path, field,
         "shape " + shape.dump() + " of " + dt.get<std::string>() + " needs " + std::to_string(nbytes) +
             " bytes but data_offsets " + off.dump() + " span " + std::to_string(e.end - e.begin));
  }
  return e;
}

}  // namespace

std::int64_t TensorEntry::numel() const noexcept {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::uint64_t SafetensorsHeader::data_bytes() const noexcept {
  return tensors.empty() ? 0 : tensors.back().end;
}

const TensorEntry* SafetensorsHeader::find(std::string_view name) const noexcept {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors[it->second];
}

std::size_t find_invalid_utf8(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) { ++i; continue; }
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
    else return i;
    if (i + len > n) return i;
    for (std::size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are invalid.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
      return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

SafetensorsHeader parse_safetensors_header(const std::uint8_t* bytes, std::size_t available,
                                           std::uint64_t file_size, const std::string& path) {
  if (file_size < 8 || available < 8) {
    fail(path, "", "file is " + std::to_string(file_size) +
                       " bytes, too short for a safetensors file (it starts with an 8-byte header length)");
  }
  SafetensorsHeader h;
  h.header_len = read_le_u64(bytes);
  if (h.header_len > kMaxHeaderBytes) {
    fail(path, "header", "header length " + std::to_string(h.header_len) + " exceeds the limit of " +
                             std::to_string(kMaxHeaderBytes) + " bytes; not a safetensors file?");
  }
  if (8 + h.header_len > file_size) {
    fail(path, "header", "header length " + std::to_string(h.header_len) + " runs past the end of the file (" +
                             std::to_string(file_size) + " bytes); the file is truncated or not safetensors");
  }
  if (8 + h.header_len > available) {
    fail(path, "header", "internal: header not fully available in memory");
  }
  const std::string_view text(reinterpret_cast<const char*>(bytes + 8), h.header_len);
  if (text.empty() || text.front() != '{') {
    fail(path, "header", "header must be a JSON object starting with '{'");
  }
  if (const auto bad = find_invalid_utf8(text); bad != std::string_view::npos) {
    fail(path, "header", "header is not valid UTF-8 (byte " + std::to_string(bad) + " of the header)");
  }
  const json doc = parse_json_rejecting_duplicates(text, path);
  if (!doc.is_object()) fail(path, "header", std::string("header must be a JSON object, got ") + doc.type_name());

  for (const auto& [key, value] : doc.items()) {
    if (key == "__metadata__") {
      h.metadata = parse_metadata(value, path);
      continue;
    }
    h.tensors.push_back(parse_entry(key, value, path));
  }

  // The data section must be tiled exactly: sorted by begin, each tensor starts where the last
  // one ended, and the last one ends at the end of the file.
  std::sort(h.tensors.begin(), h.tensors.end(), [](const TensorEntry& a, const TensorEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const std::uint64_t data_size = file_size - 8 - h.header_len;
  std::uint64_t expected = 0;
  const TensorEntry* prev = nullptr;
  for (const auto& e : h.tensors) {
    if (e.end > data_size) {
      fail(path, sq(e.name), "data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                                     "] run past the end of the data section (" + std::to_string(data_size) +
                                     " bytes); the file is truncated");
    }
    if (e.begin < expected) {
      fail(path, sq(e.name), "data overlaps tensor " + sq(prev->name) + " (begins at " +
                                     std::to_string(e.begin) + ", before " + std::to_string(expected) + ")");
    }
    if (e.begin > expected) {
      fail(path, sq(e.name), "hole in the data section: bytes [" + std::to_string(expected) + ", " +
                                     std::to_string(e.begin) + ") belong to no tensor");
    }
    expected = e.end;
    prev = &e;
  }
  if (expected != data_size) {
    fail(path, "", "data section has " + std::to_string(data_size - expected) +
                       " trailing bytes that belong to no tensor (data ends at " + std::to_string(expected) +
                       ", file data section is " + std::to_string(data_size) + " bytes)");
  }
  for (std::size_t i = 0; i < h.tensors.size(); ++i) h.by_name_.emplace(h.tensors[i].name, i);
  return h;
}

}  // namespace ms::io
