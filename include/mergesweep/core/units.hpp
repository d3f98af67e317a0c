// Byte-size parsing and formatting shared by the CLI verbs.
#pragma once

#include <cstdint>
#include <string>

namespace ms {

// Parses "5GB" (10^9, as transformers' max_shard_size), "5GiB" (2^30), "500MB", "100KB", "123"
// (bytes). Throws ms::Error naming `field` on anything else.
std::uint64_t parse_byte_size(const std::string& text, const std::string& field);

// "1.50 GB" style, decimal units, for humans.
std::string format_bytes(std::uint64_t bytes);

// "1.23M" style parameter counts.
std::string format_count(std::uint64_t count);

}  // namespace ms
