#include "parts.hpp"

#include "mergesweep/core/error.hpp"

namespace ms::merge::parts {

ParamDef num(const char* name, const char* def, double lo, double hi, const char* help, bool lo_excl) {
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

ParamDef integer(const char* name, const char* def, double lo, double hi, const char* help) {
  ParamDef d = num(name, def, lo, hi, help);
  d.type = ParamType::Int;
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
  return integer("seed", "0", 0, 9007199254740992.0, "random mask seed (with the configuration, model and tensor)");
}
ParamDef rescale() {
  return choice("rescale", "inverse_density", {"inverse_density", "l1", "none"},
                "DARE rescale of kept entries: 1/density (paper, the study's fork), l1 = match the L1 norm "
                "(mergekit >= 0.1), none");
}
ParamDef alpha() { return num("alpha", "1", -1e6, 1e6, "scale of the merged delta: theta0 + alpha * delta"); }
ParamDef beta() { return num("beta", "0.2", 0, 1, "Subspace Boosting: cumulative share of the spectrum that is boosted"); }
// Its values were named after the fork's versions (oct2025, jan2026); the names that say what they
// do are accepted and mean the same. The stored spelling stays, so config ids do not change.
ParamDef sb_order() {
  ParamDef d = choice("sb_order", "oct2025", {"oct2025", "jan2026"},
                      "Subspace Boosting order: scale_then_boost (stored as oct2025) = normalize, scale by lambda, "
                      "boost; boost_then_scale (stored as jan2026) = boost the raw sum, normalize, scale");
  d.aliases = {{"scale_then_boost", "oct2025"}, {"boost_then_scale", "jan2026"}};
  return d;
}
ParamDef trim() {
  return choice("trim", "per_tensor", {"per_tensor", "global"},
                "TIES trim: per_tensor top-k (mergekit) or global over the whole model (original TIES paper)");
}
ParamDef normalize(const char* def, const char* help) { return flag("normalize", def, help); }

std::vector<double> weights_of(const MergeRequest& r) {
  std::vector<double> w;
  for (const auto& m : r.members) w.push_back(r.method->uses_weight ? m.weight : 1.0);
  return w;
}

kernels::StoredSpan base_span(const FusedCall& c) { return kernels::stored_span(c.base, c.base.numel()); }

std::vector<kernels::StoredSpan> member_spans(const FusedCall& c) {
  std::vector<kernels::StoredSpan> spans;
  spans.reserve(c.held.size());
  for (const at::Tensor* t : c.held) spans.push_back(kernels::stored_span(*t, c.base.numel()));
  return spans;
}

bool report(const kernels::StreamStats& st, FusedResult& res) {
  res.sq_change = st.sq_change;
  res.non_finite = st.non_finite;
  return true;
}

std::vector<at::Tensor> dare(const TensorInputs& in) {
  const MergeRequest& r = in.request;
  std::vector<at::Tensor> out;
  const auto seed = static_cast<std::uint64_t>(r.params.number("seed"));
  const std::uint64_t config = r.config_hash();
  for (std::size_t i = 0; i < in.tau.size(); ++i) {
    const at::Tensor& tau = in.tau[i];
    const double d = r.members[i].density;
    // The mask is a hash of (seed, config, checkpoint, tensor, element), drawn on the host and
    // moved to the task vector's device: the same mask on every device.
    const at::Tensor keep =
        (in.dare_mask ? (*in.dare_mask)(i, in.name).to(at::kFloat)
                      : dare_keep_mask(seed, config, r.members[i].index, in.name, in.element_offset, tau.numel(), d))
            .view(tau.sizes())
            .to(tau.device());
    const at::Tensor masked = tau * keep;  // drop each entry with probability 1 − d
    const std::string& how = r.params.choice("rescale");
    if (how == "inverse_density") {
      out.push_back(kernels::div_by(masked, d));
    } else if (how == "l1") {
      // mergekit >= 0.1: match the L1 norm of the unmasked delta (skipped below 1e-7, as there).
      const double before = tau.abs().sum().item<double>(), after = masked.abs().sum().item<double>();
      out.push_back(before < 1e-7 || after < 1e-7 ? masked : masked * static_cast<float>(before / after));
    } else {
      out.push_back(masked);
    }
  }
  return out;
}

kernels::Parts ties_parts(const TensorInputs& in) {
  const MergeRequest& r = in.request;
  std::vector<at::Tensor> trimmed;
  if (r.params.choice("trim") == "global") {
    for (std::size_t i = 0; i < in.tau.size(); ++i)
      trimmed.push_back(in.tau[i] * (in.tau[i].abs() >= in.stats.trim_threshold[i]));
    const at::Tensor merged = kernels::ties_original(trimmed, in.stats.majority_sign);
    return {merged, at::scalar_tensor(1.0, merged.options())};
  }
  for (std::size_t i = 0; i < in.tau.size(); ++i) trimmed.push_back(kernels::trim_top_k(in.tau[i], r.members[i].density));
  return kernels::ties_consensus(trimmed, weights_of(r), r.params.flag("normalize"));
}

// oct2025 boosts the normalized, scaled delta; jan2026 boosts the raw sum, then normalizes and scales.
at::Tensor scaled_delta(const MergeRequest& r, const std::string& name, const kernels::Parts& parts, bool boost) {
  const double lambda = r.params.number("lambda");
  if (!boost || !is_boosted(name) || parts.raw.dim() != 2) return parts.normalized() * lambda;
  const double beta = r.params.number("beta");
  if (r.params.choice("sb_order") == "oct2025") return kernels::subspace_boost(parts.normalized() * lambda, beta);
  return kernels::subspace_boost(parts.raw, beta) / parts.divisor * lambda;
}

// Same normalize (divide by the weights' sum, TIES: of the weights agreeing in sign) and lambda
// (scales the merged delta) as mergekit's generalized task arithmetic.
MergekitForm task_arithmetic_form(const MergeRequest& r) {
  MergekitForm f;
  f.method = r.method->name;
  f.params["lambda"] = format_number(r.params.number("lambda"));
  f.params["normalize"] = r.params.flag("normalize") ? "true" : "false";
  return f;
}

at::Tensor l1_rescaled(const at::Tensor& tau, const at::Tensor& masked) {
  const at::Tensor before = tau.abs().sum(), after = masked.abs().sum();
  if (before.item<float>() < 1e-7f || after.item<float>() < 1e-7f) return masked;
  return masked * (before / after);  // a 0-dim float32 ratio, as mergekit's tensor division
}

at::Tensor generalized_task_arithmetic(const TensorInputs& in, const std::vector<at::Tensor>& sparse, bool consensus) {
  const MergeRequest& r = in.request;
  const bool normalize = r.params.flag("normalize");
  const kernels::Parts merged = consensus ? kernels::ties_consensus(sparse, weights_of(r), normalize)
                                          : kernels::weighted_sum(sparse, weights_of(r), normalize);
  return in.base + scaled_delta(r, in.name, merged, false);
}

}  // namespace ms::merge::parts
