#include "mergesweep/core/units.hpp"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>

#include "mergesweep/core/error.hpp"

namespace ms {

std::uint64_t parse_byte_size(const std::string& text, const std::string& field) {
  std::size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  std::size_t int_end = i;
  if (i < text.size() && text[i] == '.') {
    ++i;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  }
  if (i == 0 || (int_end == 0 && i == 1)) {
    fail("", field, "'" + text + "' is not a size; expected a number with an optional unit (e.g. 5GB, 500MB, 2GiB)");
  }
  const double number = std::stod(text.substr(0, i));
  std::string unit = text.substr(i);
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  double scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  else if (unit == "KB") scale = 1e3;
  else if (unit == "MB") scale = 1e6;
  else if (unit == "GB") scale = 1e9;
  else if (unit == "TB") scale = 1e12;
  else if (unit == "KIB") scale = 1024.0;
  else if (unit == "MIB") scale = 1024.0 * 1024;
  else if (unit == "GIB") scale = 1024.0 * 1024 * 1024;
  else if (unit == "TIB") scale = 1024.0 * 1024 * 1024 * 1024;
  else fail("", field, "unknown unit '" + text.substr(i) + "' in '" + text + "'; expected B, KB, MB, GB, TB, KiB, MiB, GiB or TiB");
  const double bytes = number * scale;
  if (!(bytes >= 1) || bytes > 9.0e18) {
    fail("", field, "size '" + text + "' is out of range; expected at least 1 byte");
  }
  return static_cast<std::uint64_t>(std::llround(bytes));
}

namespace {

// "1.50 MB" / "90.43K": divide by 1000 until below 1000, two decimals once scaled.
std::string format_scaled(std::uint64_t value, const char* const* units, int count, const char* sep,
                          const char* unscaled_suffix) {
  double v = static_cast<double>(value);
  int u = 0;
  while (v >= 1000.0 && u < count - 1) { v /= 1000.0; ++u; }
  char buf[32];
  if (u == 0) std::snprintf(buf, sizeof buf, "%llu%s", static_cast<unsigned long long>(value), unscaled_suffix);
  else std::snprintf(buf, sizeof buf, "%.2f%s%s", v, sep, units[u]);
  return buf;
}

}  // namespace

std::string format_bytes(std::uint64_t bytes) {
  static const char* kUnits[] = {"B", "KB", "MB", "GB", "TB", "PB"};
  return format_scaled(bytes, kUnits, 6, " ", " B");
}

std::string format_count(std::uint64_t count) {
  static const char* kUnits[] = {"", "K", "M", "B", "T"};
  return format_scaled(count, kUnits, 5, "", "");
}

}  // namespace ms
