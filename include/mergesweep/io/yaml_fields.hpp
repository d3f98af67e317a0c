// The one YAML helper (merge configurations and sweep specs): typed reads of YAML nodes whose
// every error reads the same way,
//   <file>: <key>: line <N>: expected <what>, got <what was there>
// e.g. "spec.yaml: subsets.seed: line 4: expected an integer in [0, 2^62], got 'x'".
#pragma once

#include <yaml-cpp/yaml.h>

#include <set>
#include <string>
#include <vector>

namespace ms::io {

class YamlFields {
 public:
  explicit YamlFields(std::string file) : file_(std::move(file)) {}
  const std::string& file() const { return file_; }

  // Parses `text`; a syntax error or a document that is not a mapping is an error (`what_it_is`
  // says what the document should be, e.g. "a sweep spec (a YAML mapping, see docs/formats.md)").
  YAML::Node load_mapping(const std::string& text, const std::string& what_it_is) const;

  // The one error format: "<file>: <key>: line N: expected <expected>, got <got>".
  [[noreturn]] void fail(const YAML::Node& at, const std::string& key, const std::string& expected,
                         const std::string& got) const;
  // For facts that are not a type mismatch ("is required", "lists 3 twice"): "line N: <what>".
  [[noreturn]] void fail(const YAML::Node& at, const std::string& key, const std::string& what) const;

  // `map` must be a mapping whose keys are all in `allowed`; `where` prefixes the key ("subsets.").
  void check_keys(const YAML::Node& map, const std::string& where, const std::set<std::string>& allowed) const;
  // A single value (not a list or a mapping); `hint` is appended to the error when given.
  std::string scalar(const YAML::Node& n, const std::string& key, const std::string& hint = "") const;
  long long integer(const YAML::Node& n, const std::string& key, long long lo, long long hi) const;
  double number(const YAML::Node& n, const std::string& key, double lo, double hi) const;
  double number(const YAML::Node& n, const std::string& key) const;  // any finite number
  // A number or a non-empty list of distinct numbers in [lo, hi].
  std::vector<int> int_list(const YAML::Node& n, const std::string& key, int lo, int hi) const;

  static std::string line_prefix(const YAML::Node& n);  // "line N: " ("" without a position)
  static std::string describe(const YAML::Node& n);      // "'text'", "a list", "a mapping", "nothing"

 private:
  std::string file_;
};

}  // namespace ms::io
