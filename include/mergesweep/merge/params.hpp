// Method parameters: declared once per method (name, type, default, range, meaning), validated
// before any tensor is touched, and printed canonically (config ids and archives use that text).
#pragma once

#include <map>
#include <string>
#include <vector>

namespace ms::merge {

enum class ParamType { Float, Bool, Int, Choice };

struct ParamDef {
  std::string name;
  ParamType type = ParamType::Float;
  std::string default_value;          // canonical text: "1", "true", "per_tensor"
  double min = -1e300, max = 1e300;   // inclusive bounds for Float/Int
  bool min_exclusive = false;
  std::vector<std::string> choices;   // for Choice
  // Choice: other spellings accepted for a value (alias -> the value stored, printed and hashed:
  // config ids keep the stored spelling).
  std::map<std::string, std::string> aliases;
  std::string help;
};

// Validated parameter values of one method. Numbers and bools are stored as double, choices as text.
class Params {
 public:
  double number(const std::string& name) const;   // Float, Int or Bool (0/1)
  bool flag(const std::string& name) const { return number(name) != 0.0; }
  const std::string& choice(const std::string& name) const;
  // "name=value,name=value" sorted by name, every parameter present (defaults filled in).
  std::string canonical() const;
  const std::map<std::string, std::string>& text() const noexcept { return text_; }

 private:
  friend Params validate_params(const std::vector<ParamDef>&, const std::map<std::string, std::string>&,
                                const std::string&, const std::string&);
  std::map<std::string, double> numbers_;
  std::map<std::string, std::string> choices_;
  std::map<std::string, std::string> text_;  // canonical text of every value
};

// Parses and checks `given` (parameter name -> text) against `defs`: unknown names, wrong types,
// NaN, out-of-range values are ms::Error naming `where` (a file or "method 'ties'") and the field.
Params validate_params(const std::vector<ParamDef>& defs, const std::map<std::string, std::string>& given,
                       const std::string& file, const std::string& where);

// Canonical text of a double: shortest round-trip form ("0.1", "1", "1e-08").
std::string format_number(double v);

}  // namespace ms::merge
