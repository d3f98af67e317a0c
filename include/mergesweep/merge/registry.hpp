// The merge-method registry: one table that says, for each method, its name, its parameters,
// what inputs it needs and how much of the model it must see at once. Everything that accepts a
// method by name (the merge verb, mergekit import, sweep specs) goes through it.
#pragma once

#include <string>
#include <vector>

#include "mergesweep/merge/params.hpp"

namespace ms::merge {

enum class MethodId {
  Linear, Slerp, TaskArithmetic, Ties, DareTies, DareLinear, ModelStock, TsvM, IsoC, IsoCts,
  TaskArithmeticSb, TiesSb
};

// How much of the model one output tensor depends on: sharding and scheduling follow from it.
enum class Scope {
  Elementwise,  // each element from the same element of the inputs (any row split works)
  WholeTensor,  // statistics over a whole tensor (top-k, SVD, cosines): keep tensors whole
  WholeModel    // statistics over every tensor (global trim): needs a reduction across shards
};

struct MethodInfo {
  MethodId id;
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
};

const std::vector<MethodInfo>& all_methods();
const MethodInfo* find_method(const std::string& name);
// Throws ms::Error naming `file` and listing the known methods.
const MethodInfo& require_method(const std::string& name, const std::string& file);

// Scope of one run: a method whose WholeModel statistic is switched off by a parameter
// (TIES with per-tensor trim) reports WholeTensor.
Scope effective_scope(const MethodInfo& m, const Params& p);

}  // namespace ms::merge
