#include "mergesweep/io/yaml_fields.hpp"

#include <cmath>
#include <cstdio>

#include "mergesweep/core/error.hpp"

namespace ms::io {
namespace {

std::string number_text(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", v);
  return b;
}

std::string range_text(long long v) {
  // Powers of two read better than their digits in a message.
  for (int k = 10; k < 63; ++k)
    if (v == (1LL << k)) return "2^" + std::to_string(k);
  return std::to_string(v);
}

}  // namespace

std::string YamlFields::line_prefix(const YAML::Node& n) {
  return n.Mark().line >= 0 ? "line " + std::to_string(n.Mark().line + 1) + ": " : "";
}

std::string YamlFields::describe(const YAML::Node& n) {
  if (!n || n.IsNull()) return "nothing";
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a mapping";
  return "'" + n.as<std::string>() + "'";
}

YAML::Node YamlFields::load_mapping(const std::string& text, const std::string& what_it_is) const {
  YAML::Node doc;
  try {
    doc = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    ms::fail(file_, "", "line " + std::to_string(e.mark.line + 1) + ": invalid YAML: " + e.msg);
  }
  if (!doc.IsMap()) ms::fail(file_, "", "expected " + what_it_is + ", got " + describe(doc));
  return doc;
}

void YamlFields::fail(const YAML::Node& at, const std::string& key, const std::string& expected,
                      const std::string& got) const {
  ms::fail(file_, key, line_prefix(at) + "expected " + expected + ", got " + got);
}

void YamlFields::fail(const YAML::Node& at, const std::string& key, const std::string& what) const {
  ms::fail(file_, key, line_prefix(at) + what);
}

void YamlFields::check_keys(const YAML::Node& map, const std::string& where, const std::set<std::string>& allowed) const {
  const std::string field = where.empty() ? "" : where.substr(0, where.size() - (where.back() == '.' ? 1 : 0));
  if (!map.IsMap()) fail(map, field, "a mapping", describe(map));
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
  for (const auto& kv : map) {
    const std::string key = kv.first.as<std::string>();
    if (allowed.count(key)) continue;
    const std::string full = field.empty() ? key : field + "." + key;
    fail(kv.first, full, "unknown key '" + key + "' (expected one of: " + list + ")");
  }
}

std::string YamlFields::scalar(const YAML::Node& n, const std::string& key, const std::string& hint) const {
  if (!n.IsScalar()) fail(n, key, "a single value", describe(n) + (hint.empty() ? "" : " (" + hint + ")"));
  return n.as<std::string>();
}

long long YamlFields::integer(const YAML::Node& n, const std::string& key, long long lo, long long hi) const {
  const std::string t = scalar(n, key);
  try {
    std::size_t used = 0;
    const long long v = std::stoll(t, &used);
    if (used == t.size() && v >= lo && v <= hi) return v;
  } catch (const std::exception&) {
  }
  fail(n, key, "an integer in [" + range_text(lo) + ", " + range_text(hi) + "]", "'" + t + "'");
}

double YamlFields::number(const YAML::Node& n, const std::string& key, double lo, double hi) const {
  const std::string t = scalar(n, key);
  try {
    std::size_t used = 0;
    const double v = std::stod(t, &used);
    if (used == t.size() && v >= lo && v <= hi) return v;
  } catch (const std::exception&) {
  }
  fail(n, key, "a number in [" + number_text(lo) + ", " + number_text(hi) + "]", "'" + t + "'");
}

double YamlFields::number(const YAML::Node& n, const std::string& key) const {
  const std::string t = scalar(n, key);
  try {
    std::size_t used = 0;
    const double v = std::stod(t, &used);
    if (used == t.size() && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  fail(n, key, "a finite number", "'" + t + "'");
}

std::vector<int> YamlFields::int_list(const YAML::Node& n, const std::string& key, int lo, int hi) const {
  std::vector<int> out;
  if (n.IsScalar()) {
    out.push_back(static_cast<int>(integer(n, key, lo, hi)));
  } else if (n.IsSequence() && n.size() > 0) {
    for (std::size_t i = 0; i < n.size(); ++i)
      out.push_back(static_cast<int>(integer(n[i], key + "[" + std::to_string(i) + "]", lo, hi)));
  } else {
    fail(n, key, "a number or a non-empty list of numbers", describe(n));
  }
  std::set<int> seen;
  for (int v : out)
    if (!seen.insert(v).second) fail(n, key, "lists " + std::to_string(v) + " twice");
  return out;
}

}  // namespace ms::io
