#include "mergesweep/merge/request.hpp"

#include <cmath>

#include "mergesweep/core/error.hpp"
#include "mergesweep/core/hash.hpp"

namespace ms::merge {

std::string MergeRequest::describe() const {
  std::string s = method->name + "(" + params.canonical();
  s += params.canonical().empty() ? "" : "; ";
  for (std::size_t i = 0; i < members.size(); ++i) {
    const auto& m = members[i];
    s += (i ? ", " : "") + std::string("#") + std::to_string(m.index);
    if (method->uses_weight) s += " w=" + format_number(m.weight);
    if (method->uses_density) s += " d=" + format_number(m.density);
  }
  return s + ")";
}

std::uint64_t MergeRequest::config_hash() const { return stable_hash(describe()); }

void validate_request(const MergeRequest& r, const std::string& file) {
  const Method& m = *r.method;
  const int n = static_cast<int>(r.members.size());
  if (n < m.min_models) {
    fail(file, "models", m.name + " needs at least " + std::to_string(m.min_models) + " model" +
                             (m.min_models == 1 ? "" : "s") + " besides the base, got " + std::to_string(n));
  }
  if (m.max_models > 0 && n > m.max_models) {
    fail(file, "models", m.name + " takes exactly " + std::to_string(m.max_models) + " model" +
                             (m.max_models == 1 ? "" : "s") + " besides the base, got " + std::to_string(n));
  }
  double weight_sum = 0;
  for (const auto& mem : r.members) {
    if (!std::isfinite(mem.weight)) fail(file, mem.name + ": weight", "must be a finite number");
    if (!(mem.density > 0.0 && mem.density <= 1.0)) {
      fail(file, mem.name + ": density", "value " + format_number(mem.density) + " is out of range; expected (0, 1]");
    }
    weight_sum += mem.weight;
  }
  m.validate(r, file);
}

}  // namespace ms::merge
