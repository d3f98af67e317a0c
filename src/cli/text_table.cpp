#include "text_table.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace ms::cli {
namespace {

// Width on a terminal: UTF-8 code points (continuation bytes 10xxxxxx do not count).
std::size_t width(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

}  // namespace

std::string fixed(double v, int digits) {
  if (std::isnan(v)) return "N/A";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string table(const std::vector<std::string>& head, const std::vector<bool>& right,
                  const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> w(head.size());
  for (std::size_t c = 0; c < head.size(); ++c) {
    w[c] = std::max<std::size_t>(width(head[c]), 1);
    for (const auto& r : rows) w[c] = std::max(w[c], width(r[c]));
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s = "|";
    for (std::size_t c = 0; c < cells.size(); ++c) {
      const std::string pad(w[c] - width(cells[c]), ' ');
      s += right[c] ? pad + cells[c] : cells[c] + pad;
      s += "|";
    }
    return s + "\n";
  };
  std::string out = line(head);
  out += "|";
  for (std::size_t c = 0; c < head.size(); ++c)
    out += std::string(w[c] - (right[c] ? 1 : 0), '-') + (right[c] ? ":" : "") + "|";
  out += "\n";
  for (const auto& r : rows) out += line(r);
  return out;
}

}  // namespace ms::cli
