#include "mergesweep/core/error.hpp"

namespace ms {
namespace {

std::string compose(const std::string& file, const std::string& field, const std::string& detail) {
  std::string out;
  if (!file.empty()) out += file + ": ";
  if (!field.empty()) out += field + ": ";
  return out + detail;
}

}  // namespace

Error::Error(std::string file, std::string field, std::string detail)
    : std::runtime_error(compose(file, field, detail)),
      file_(std::move(file)),
      field_(std::move(field)),
      detail_(std::move(detail)) {}

void fail(const std::string& file, const std::string& field, const std::string& detail) {
  throw Error(file, field, detail);
}

}  // namespace ms
