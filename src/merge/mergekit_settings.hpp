// Internal: mergekit's parameter settings (its configuration language): a value may be a scalar,
// a gradient (a list of numbers interpolated over a slice's layers) or a list of conditions
// {filter, value} whose first match on the tensor's name gives the value. Settings are kept as
// given and resolved per tensor (per_tensor_request), in mergekit's precedence: a model's own
// settings in its slice, the slice's, then the top level's.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "mergesweep/merge/request.hpp"

namespace YAML { class Node; }
namespace ms::io { class YamlFields; }

namespace ms::merge {

struct SettingCondition {
  std::string filter;               // "" or "*": every tensor; else a substring of the tensor's name
  std::vector<std::string> values;  // one value, or a gradient
  bool operator==(const SettingCondition& o) const { return filter == o.filter && values == o.values; }
};
using Setting = std::vector<SettingCondition>;
using SettingMap = std::map<std::string, Setting>;  // parameter name -> setting

// Parses a setting at `field`: a scalar, a list of scalars, {filter?, value} or a list of those.
Setting parse_setting(const io::YamlFields& y, const YAML::Node& n, const std::string& field);
// A plain scalar (one condition for every tensor, one value): the value; else nothing.
std::optional<std::string> plain_value(const Setting& s);
// mergekit's evaluate_setting: the first condition matching `tensor`, its gradient at t in [0, 1]
// (numbers interpolate, other values are picked); nothing when no condition matches.
std::optional<std::string> evaluate_setting(const Setting& s, const std::string& tensor, double t);

// A setting's value as a finite number ("true"/"false" and words are not numbers).
std::optional<double> as_number(const std::string& s);

// The decoder layer of an HF tensor name ("model.layers.12.mlp.up_proj.weight" -> 12), or -1.
std::int64_t layer_of(const std::string& tensor);

// One output slice: output layers [first_layer, first_layer + layers), the members' settings in
// it (index = member) and its own. The models form is one slice over every layer (layers = -1).
struct SliceSettings {
  std::int64_t first_layer = 0;
  std::int64_t layers = -1;
  std::vector<SettingMap> member;
  SettingMap own;
};
struct TensorSettings {
  std::vector<SliceSettings> slices;
  SettingMap top;
  // True when some value depends on the tensor (a filter, a gradient, members of one slice that
  // differ between slices): the merge then resolves a request per tensor.
  bool per_tensor() const;
};

// The request for output tensor `tensor` of a model with `num_layers` decoder layers: `job`'s
// request with every setting resolved (method parameters checked against their declarations,
// weight and density per member). The slice holding the tensor's layer gives t = its position
// in the slice (0 outside the layers, mergekit's pre and post weights, which take the first and
// the last slice).
MergeRequest per_tensor_request(const MergeRequest& job, const TensorSettings& s, const std::string& tensor,
                                std::int64_t num_layers, const std::string& file);

}  // namespace ms::merge
