#include "pack_checks.hpp"

#include "mergesweep/core/error.hpp"

namespace ms::eval::detail {

void check_offsets(const std::vector<std::int64_t>& off, std::size_t n, std::size_t total, const std::string& path,
                   const char* field, const char* unit) {
  if (off.size() != n + 1)
    fail(path, field, "has " + std::to_string(off.size()) + " entries, expected " + std::to_string(n + 1) + " (one per " +
                          unit + " plus one)");
  if (off[0] != 0) fail(path, field, "must start at 0, found " + std::to_string(off[0]));
  for (std::size_t i = 0; i < n; ++i) {
    if (off[i + 1] < off[i])
      fail(path, field, std::string(unit) + " " + std::to_string(i) + ": offsets decrease (" + std::to_string(off[i]) +
                            " then " + std::to_string(off[i + 1]) + ")");
    if (off[i + 1] > static_cast<std::int64_t>(total))
      fail(path, field, std::string(unit) + " " + std::to_string(i) + ": offset " + std::to_string(off[i + 1]) +
                            " is past the end of the data (" + std::to_string(total) + " entries)");
  }
  if (off[n] != static_cast<std::int64_t>(total))
    fail(path, field, "last offset " + std::to_string(off[n]) + " does not cover all " + std::to_string(total) +
                          " entries of the data");
}

void check_ids(const std::vector<std::int32_t>& ids, std::int64_t vocab, const std::string& path, const char* field,
               const std::string& at) {
  for (std::size_t k = 0; k < ids.size(); ++k) {
    if (ids[k] < 0 || ids[k] >= vocab)
      fail(path, field, at + ": token id " + std::to_string(ids[k]) + " at position " + std::to_string(k) +
                            " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
  }
}

}  // namespace ms::eval::detail
