// One error type for every user-facing failure, so the CLI can print one style everywhere:
//   mergesweep: error: <file>[: <tensor or field>]: <what was wrong, what was expected>
#pragma once

#include <stdexcept>
#include <string>

#include "mergesweep/core/exit_codes.hpp"  // the exit statuses that go with these errors

namespace ms {

class Error : public std::runtime_error {
 public:
  // `file` and `field` may be empty; `detail` says what was wrong and what was expected.
  Error(std::string file, std::string field, std::string detail);

  const std::string& file() const noexcept { return file_; }
  const std::string& field() const noexcept { return field_; }
  const std::string& detail() const noexcept { return detail_; }

 private:
  std::string file_;
  std::string field_;
  std::string detail_;
};

[[noreturn]] void fail(const std::string& file, const std::string& field, const std::string& detail);

}  // namespace ms
