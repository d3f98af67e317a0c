// Internal: nlohmann::json error text without the "[json.exception.parse_error.101] " prefix.
#pragma once

#include <exception>
#include <string>

namespace ms::io::detail {

inline std::string json_error_text(const std::exception& e) {
  std::string what = e.what();
  const auto pos = what.find("] ");
  return pos == std::string::npos ? what : what.substr(pos + 2);
}

}  // namespace ms::io::detail
