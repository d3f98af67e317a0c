// The merge-method registry: every method object (method.hpp), found by name. Each says its name,
// its parameters, what inputs it needs and how much of the model it must see at once. Everything
// that accepts a method by name (the merge verb, mergekit import, sweep specs) goes through it.
#pragma once

#include <string>
#include <vector>

#include "mergesweep/merge/params.hpp"

namespace ms::merge {

// How much of the model one output tensor depends on: sharding and scheduling follow from it.
enum class Scope {
  Elementwise,  // each element from the same element of the inputs (any row split works)
  WholeTensor,  // statistics over a whole tensor (top-k, SVD, cosines): keep tensors whole
  WholeModel    // statistics over every tensor (global trim): needs a reduction across shards
};

struct MethodInfo {
  std::string name;
  std::string summary;
  std::string reference_url;
  bool needs_base = true;
  int min_models = 1;
  int max_models = 0;  // 0: no limit
  Scope scope = Scope::Elementwise;
  bool uses_weight = false;   // per-model `weight`
  bool uses_density = false;  // per-model `density`
  std::vector<ParamDef> params;
  double plan_cost = 1;            // merge time per parameter relative to task arithmetic (planner)
  bool accepts_int8_mask = false;  // mergekit's int8_mask: sign masks in int8, the same merge
  // Parameters mergekit accepts for this method and ignores (its task_arithmetic takes density and
  // rescale but sparsifies nothing): accepted from mergekit YAML, with no effect.
  std::vector<std::string> mergekit_no_effect;
  // Takes one model per mergekit slice and stacks the slices' layers into a new architecture
  // (passthrough): merges of whole models only where every slice has one source; not in a sweep.
  bool stacks_layers = false;
};

class Method;

// In registration order (src/merge/methods/all.cpp).
const std::vector<const Method*>& all_methods();
const Method* find_method(const std::string& name);
// Throws ms::Error naming `file` and listing the known methods.
const Method& require_method(const std::string& name, const std::string& file);

}  // namespace ms::merge
