#include "mergekit_settings.hpp"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdlib>

#include "mergesweep/core/error.hpp"
#include "mergesweep/io/yaml_fields.hpp"
#include "mergesweep/model/arch_table.hpp"

namespace ms::merge {
namespace {

std::vector<std::string> parse_values(const io::YamlFields& y, const YAML::Node& n, const std::string& field) {
  if (!n.IsSequence()) return {y.scalar(n, field)};
  if (n.size() == 0) y.fail(n, field, "a value or a non-empty gradient list", "an empty list");
  std::vector<std::string> v;
  for (std::size_t i = 0; i < n.size(); ++i) v.push_back(y.scalar(n[i], field + "[" + std::to_string(i) + "]"));
  return v;
}

SettingCondition parse_condition(const io::YamlFields& y, const YAML::Node& n, const std::string& field) {
  y.check_keys(n, field + ".", {"filter", "value"});
  if (!n["value"]) y.fail(n, field + ".value", "missing (a condition is {filter: NAME_PART, value: V})");
  SettingCondition c;
  if (n["filter"]) c.filter = y.scalar(n["filter"], field + ".filter");
  c.values = parse_values(y, n["value"], field + ".value");
  return c;
}

// The first setting of `param` in `chain` (highest precedence first) that has a value here.
std::optional<std::string> resolve(const std::vector<const SettingMap*>& chain, const std::string& param,
                                   const std::string& tensor, double t) {
  for (const SettingMap* m : chain) {
    const auto it = m->find(param);
    if (it == m->end()) continue;
    if (auto v = evaluate_setting(it->second, tensor, t)) return v;
  }
  return std::nullopt;
}

}  // namespace

std::optional<double> as_number(const std::string& s) {
  if (s.empty() || s == "true" || s == "false") return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::int64_t layer_of(const std::string& tensor) {
  const std::string key = ".layers.";
  const std::size_t at = tensor.find(key);
  if (at == std::string::npos) return -1;
  char* end = nullptr;
  const char* digits = tensor.c_str() + at + key.size();
  const long long v = std::strtoll(digits, &end, 10);
  return end != digits && *end == '.' ? v : -1;
}

Setting parse_setting(const io::YamlFields& y, const YAML::Node& n, const std::string& field) {
  if (n.IsMap()) return {parse_condition(y, n, field)};
  if (n.IsSequence() && n.size() > 0 && n[0].IsMap()) {
    Setting s;
    for (std::size_t i = 0; i < n.size(); ++i) {
      if (!n[i].IsMap()) y.fail(n[i], field + "[" + std::to_string(i) + "]", "a {filter, value} condition",
                                io::YamlFields::describe(n[i]));
      s.push_back(parse_condition(y, n[i], field + "[" + std::to_string(i) + "]"));
    }
    return s;
  }
  return {SettingCondition{"", parse_values(y, n, field)}};
}

std::optional<std::string> plain_value(const Setting& s) {
  if (s.size() == 1 && (s[0].filter.empty() || s[0].filter == "*") && s[0].values.size() == 1) return s[0].values[0];
  return std::nullopt;
}

std::optional<std::string> evaluate_setting(const Setting& s, const std::string& tensor, double t) {
  for (const auto& c : s) {
    if (!c.filter.empty() && c.filter != "*" && (tensor.empty() || tensor.find(c.filter) == std::string::npos)) continue;
    const auto& v = c.values;
    if (v.size() == 1) return v[0];
    std::vector<double> nums;
    for (const auto& x : v)
      if (auto d = as_number(x)) nums.push_back(*d);
    const double scaled = t * static_cast<double>(v.size() - 1);
    const auto i0 = static_cast<std::size_t>(scaled);  // t in [0, 1]: truncation is floor
    if (nums.size() != v.size()) return v[i0];          // booleans and words: picked, not blended
    const std::size_t i1 = std::min(v.size() - 1, i0 + 1);
    const double frac = scaled - static_cast<double>(i0);
    return format_number((1 - frac) * nums[i0] + frac * nums[i1]);
  }
  return std::nullopt;
}

bool TensorSettings::per_tensor() const {
  if (slices.size() > 1) return true;
  const auto all_plain = [](const SettingMap& m) {
    for (const auto& [_, s] : m)
      if (!plain_value(s)) return false;
    return true;
  };
  if (!all_plain(top)) return true;
  for (const auto& sl : slices) {
    if (!all_plain(sl.own)) return true;
    for (const auto& m : sl.member)
      if (!all_plain(m)) return true;
  }
  return false;
}

MergeRequest per_tensor_request(const MergeRequest& job, const TensorSettings& s, const std::string& tensor,
                                std::int64_t num_layers, const std::string& file) {
  const std::int64_t layer = layer_of(tensor);
  const SliceSettings* slice = model::tensor_kind(tensor) == model::TensorKind::Embed ? &s.slices.front() : &s.slices.back();
  double t = 0;
  for (const auto& sl : s.slices) {
    const std::int64_t len = sl.layers < 0 ? num_layers : sl.layers;
    if (layer < sl.first_layer || layer >= sl.first_layer + len) continue;
    slice = &sl;
    t = len > 1 ? static_cast<double>(layer - sl.first_layer) / static_cast<double>(len - 1) : 1.0;
  }
  MergeRequest r = job;
  std::map<std::string, std::string> given;
  for (const auto& def : job.method->params)
    if (auto v = resolve({&slice->own, &s.top}, def.name, tensor, t)) given[def.name] = *v;
  r.params = validate_params(job.method->params, given, file, "method '" + job.method->name + "' at tensor '" + tensor + "'");
  for (std::size_t i = 0; i < r.members.size(); ++i) {
    const std::vector<const SettingMap*> chain{&slice->member.at(i), &slice->own, &s.top};
    for (const char* key : {"weight", "density"}) {
      const auto v = resolve(chain, key, tensor, t);
      if (!v) continue;
      const auto d = as_number(*v);
      if (!d) fail(file, r.members[i].name + ": " + key, "'" + *v + "' is not a number (at tensor '" + tensor + "')");
      (std::string(key) == "weight" ? r.members[i].weight : r.members[i].density) = *d;
    }
  }
  validate_request(r, file);
  return r;
}

}  // namespace ms::merge
