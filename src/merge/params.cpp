#include "mergesweep/merge/params.hpp"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "mergesweep/core/error.hpp"

namespace ms::merge {

std::string format_number(double v) {
  char buf[40];
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

double Params::number(const std::string& name) const {
  const auto it = numbers_.find(name);
  if (it == numbers_.end()) fail("", name, "internal: numeric parameter not declared by this method");
  return it->second;
}

const std::string& Params::choice(const std::string& name) const {
  const auto it = choices_.find(name);
  if (it == choices_.end()) fail("", name, "internal: choice parameter not declared by this method");
  return it->second;
}

std::string Params::canonical() const {
  std::string out;
  for (const auto& [k, v] : text_) out += (out.empty() ? "" : ",") + k + "=" + v;
  return out;
}

namespace {

bool parse_double(const std::string& text, double& out) {
  // YAML spells the special values .nan, .inf and -.inf.
  std::string s = text;
  if (s == ".nan" || s == ".NaN" || s == ".NAN") s = "nan";
  else if (s == ".inf" || s == ".Inf" || s == "+.inf") s = "inf";
  else if (s == "-.inf" || s == "-.Inf") s = "-inf";
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && errno != ERANGE;
}

}  // namespace

Params validate_params(const std::vector<ParamDef>& defs, const std::map<std::string, std::string>& given,
                       const std::string& file, const std::string& where) {
  for (const auto& [name, _] : given) {
    bool known = false;
    for (const auto& d : defs) known = known || d.name == name;
    if (!known) {
      std::string names;
      for (const auto& d : defs) names += (names.empty() ? "" : ", ") + d.name;
      fail(file, name, "unknown parameter for " + where + "; it takes: " + (names.empty() ? "(none)" : names));
    }
  }
  Params p;
  for (const auto& d : defs) {
    const auto it = given.find(d.name);
    const std::string text = it == given.end() ? d.default_value : it->second;
    const std::string field = d.name;
    switch (d.type) {
      case ParamType::Bool: {
        bool v;
        if (text == "true" || text == "True" || text == "1") v = true;
        else if (text == "false" || text == "False" || text == "0") v = false;
        else fail(file, field, "'" + text + "' is not a boolean for " + where + "; expected true or false");
        p.numbers_[d.name] = v ? 1.0 : 0.0;
        p.text_[d.name] = v ? "true" : "false";
        break;
      }
      case ParamType::Choice: {
        const auto alias = d.aliases.find(text);
        const std::string value = alias == d.aliases.end() ? text : alias->second;
        bool ok = false;
        std::string list;
        for (const auto& c : d.choices) ok = ok || c == value, list += (list.empty() ? "" : ", ") + c;
        for (const auto& [a, _] : d.aliases) list += ", " + a;
        if (!ok) fail(file, field, "'" + text + "' is not valid for " + where + "; expected one of " + list);
        p.choices_[d.name] = value;
        p.text_[d.name] = value;
        break;
      }
      case ParamType::Float:
      case ParamType::Int: {
        double v;
        if (!parse_double(text, v)) fail(file, field, "'" + text + "' is not a number (" + where + ")");
        if (!std::isfinite(v)) fail(file, field, "must be a finite number, got " + text + " (" + where + ")");
        if (d.type == ParamType::Int && v != std::floor(v)) fail(file, field, "must be an integer, got " + text);
        const bool below = d.min_exclusive ? v <= d.min : v < d.min;
        if (below || v > d.max) {
          fail(file, field, "value " + text + " is out of range for " + where + "; expected " +
                                (d.min_exclusive ? "(" : "[") + format_number(d.min) + ", " + format_number(d.max) + "]");
        }
        p.numbers_[d.name] = v;
        p.text_[d.name] = format_number(v);
        break;
      }
    }
  }
  return p;
}

}  // namespace ms::merge
