#include "mergesweep/merge/registry.hpp"

#include "mergesweep/core/error.hpp"

namespace ms::merge {
namespace {

ParamDef num(const char* name, const char* def, double lo, double hi, const char* help, bool lo_excl = false) {
  ParamDef d;
  d.name = name;
  d.type = ParamType::Float;
  d.default_value = def;
  d.min = lo;
  d.max = hi;
  d.min_exclusive = lo_excl;
  d.help = help;
  return d;
}

ParamDef flag(const char* name, const char* def, const char* help) {
  ParamDef d;
  d.name = name;
  d.type = ParamType::Bool;
  d.default_value = def;
  d.help = help;
  return d;
}

ParamDef choice(const char* name, const char* def, std::vector<std::string> choices, const char* help) {
  ParamDef d;
  d.name = name;
  d.type = ParamType::Choice;
  d.default_value = def;
  d.choices = std::move(choices);
  d.help = help;
  return d;
}

ParamDef lambda() { return num("lambda", "1", -1e6, 1e6, "scale of the merged task vector: theta0 + lambda * tau"); }
ParamDef seed() {
  ParamDef d = num("seed", "0", 0, 9007199254740992.0, "DARE mask seed (with the configuration, model and tensor)");
  d.type = ParamType::Int;
  return d;
}
ParamDef rescale() {
  return choice("rescale", "inverse_density", {"inverse_density", "l1", "none"},
                "DARE rescale of kept entries: 1/density (paper, the study's fork), l1 = match the L1 norm "
                "(mergekit >= 0.1), none");
}
ParamDef alpha() { return num("alpha", "1", -1e6, 1e6, "scale of the merged delta: theta0 + alpha * delta"); }
ParamDef beta() { return num("beta", "0.2", 0, 1, "Subspace Boosting: cumulative share of the spectrum that is boosted"); }
ParamDef sb_order() {
  return choice("sb_order", "oct2025", {"oct2025", "jan2026"},
                "Subspace Boosting order: oct2025 = normalize, scale, boost; jan2026 = boost, normalize, scale");
}
ParamDef trim() {
  return choice("trim", "per_tensor", {"per_tensor", "global"},
                "TIES trim: per_tensor top-k (mergekit) or global over the whole model (original TIES paper)");
}

std::vector<MethodInfo> build() {
  const char* kGta = "https://arxiv.org/abs/2306.01708";
  std::vector<MethodInfo> m;
  m.push_back({MethodId::Linear, "linear", "weighted average of the models' weights", "https://arxiv.org/abs/2203.05482",
               false, 1, 0, Scope::Elementwise, true, false,
               {flag("normalize", "true", "divide by the sum of the weights")}});
  m.push_back({MethodId::Slerp, "slerp", "spherical interpolation between the base (t=0) and one model (t=1)",
               "https://en.wikipedia.org/wiki/Slerp", true, 1, 1, Scope::WholeTensor, false, false,
               {num("t", "0.5", 0, 1, "interpolation factor: 0 gives the base, 1 the other model"),
                choice("granularity", "tensor", {"tensor", "row"},
                       "one angle per whole tensor (mergekit, the study's fork) or one per output row")}});
  m.push_back({MethodId::TaskArithmetic, "task_arithmetic", "theta0 + lambda * sum_i w_i tau_i",
               "https://arxiv.org/abs/2212.04089", true, 1, 0, Scope::Elementwise, true, false,
               {lambda(), flag("normalize", "false", "divide the weighted sum by the sum of the weights")}});
  m.push_back({MethodId::Ties, "ties", "trim (top-k by magnitude), elect sign, disjoint merge", kGta, true, 1, 0,
               Scope::WholeTensor, true, true,
               {lambda(), flag("normalize", "true", "weighted disjoint mean instead of a sum"), trim()}});
  m.push_back({MethodId::DareTies, "dare_ties", "random drop and rescale, then TIES sign election and disjoint merge",
               "https://arxiv.org/abs/2311.03099", true, 1, 0, Scope::Elementwise, true, true,
               {lambda(), flag("normalize", "false", "weighted disjoint mean instead of a sum"), seed(), rescale()}});
  m.push_back({MethodId::DareLinear, "dare_linear", "random drop and rescale, then a weighted sum",
               "https://arxiv.org/abs/2311.03099", true, 1, 0, Scope::Elementwise, true, true,
               {lambda(), flag("normalize", "false", "divide by the sum of the weights"), seed(), rescale()}});
  m.push_back({MethodId::ModelStock, "model_stock", "interpolate base and average by the task vectors' mean cosine",
               "https://arxiv.org/abs/2403.19522", true, 2, 0, Scope::WholeTensor, false, false,
               {flag("filter_wise", "false", "one ratio per output row instead of per tensor"),
                choice("cosine_mean", "cosine", {"cosine", "angle"},
                       "average the pairwise cosines (mergekit) or the pairwise angles (fusion_bench)")}});
  m.push_back({MethodId::TsvM, "tsv_m", "task singular vectors: per-task top-r/T SVD blocks, orthogonalized",
               "https://arxiv.org/abs/2412.00081", true, 1, 0, Scope::WholeTensor, false, false, {alpha()}});
  m.push_back({MethodId::IsoC, "iso_c", "sum of task vectors with a flattened (isotropic) spectrum",
               "https://arxiv.org/abs/2502.04959", true, 1, 0, Scope::WholeTensor, false, false, {alpha()}});
  m.push_back({MethodId::IsoCts, "iso_cts", "Iso-C with common and task-specific subspaces",
               "https://arxiv.org/abs/2502.04959", true, 1, 0, Scope::WholeTensor, false, false,
               {alpha(), num("common_fraction", "0.8", 0, 1, "share of the rank given to the common subspace")}});
  m.push_back({MethodId::TaskArithmeticSb, "task_arithmetic_sb", "task arithmetic, then Subspace Boosting",
               "https://arxiv.org/abs/2506.16506", true, 1, 0, Scope::WholeTensor, true, false,
               {lambda(), flag("normalize", "false", "divide the weighted sum by the sum of the weights"), beta(),
                sb_order()}});
  m.push_back({MethodId::TiesSb, "ties_sb", "TIES, then Subspace Boosting", "https://arxiv.org/abs/2506.16506", true,
               1, 0, Scope::WholeTensor, true, true,
               {lambda(), flag("normalize", "true", "weighted disjoint mean instead of a sum"), trim(), beta(),
                sb_order()}});
  return m;
}

}  // namespace

const std::vector<MethodInfo>& all_methods() {
  static const std::vector<MethodInfo> kMethods = build();
  return kMethods;
}

const MethodInfo* find_method(const std::string& name) {
  for (const auto& m : all_methods()) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

const MethodInfo& require_method(const std::string& name, const std::string& file) {
  if (const auto* m = find_method(name)) return *m;
  std::string names;
  for (const auto& m : all_methods()) names += (names.empty() ? "" : ", ") + m.name;
  // mergekit 0.1.5's methods that mergesweep does not implement yet: named as such, so that a
  // mergekit user is not told that a method they know does not exist.
  static const char* const kMergekitOnly[] = {"nuslerp", "multislerp", "karcher", "breadcrumbs", "breadcrumbs_ties",
                                              "della", "della_linear", "sce", "nearswap", "arcee_fusion",
                                              "passthrough", "ram", "ramplus_tl"};
  for (const char* m : kMergekitOnly) {
    if (name == m)
      fail(file, "merge_method", "mergekit's method '" + name + "' is not supported yet (docs/methods.md); supported: " +
                                     names);
  }
  fail(file, "merge_method", "unknown method '" + name + "'; known: " + names);
}

Scope effective_scope(const MethodInfo& m, const Params& p) {
  if ((m.id == MethodId::Ties || m.id == MethodId::TiesSb) && p.choice("trim") == "global") return Scope::WholeModel;
  return m.scope;
}

}  // namespace ms::merge
