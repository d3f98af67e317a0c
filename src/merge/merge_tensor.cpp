// merge_tensor(): the dispatch from a request to the kernels, shared by the streaming and the
// resident paths; DARE masks; the whole-model statistics of global TIES trim.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/core/hash.hpp"
#include "mergesweep/model/arch_table.hpp"

namespace ms::merge {
namespace {

std::vector<double> weights_of(const MergeRequest& r) {
  std::vector<double> w;
  for (const auto& m : r.members) w.push_back(r.method->uses_weight ? m.weight : 1.0);
  return w;
}

std::vector<at::Tensor> dare(const MergeRequest& r, const std::string& name, const std::vector<at::Tensor>& tau,
                             std::int64_t offset, const DareMaskFn* mask_fn) {
  std::vector<at::Tensor> out;
  const auto seed = static_cast<std::uint64_t>(r.params.number("seed"));
  const std::uint64_t config = r.config_hash();
  for (std::size_t i = 0; i < tau.size(); ++i) {
    const double d = r.members[i].density;
    // The mask is a hash of (seed, config, checkpoint, tensor, element), drawn on the host and
    // moved to the task vector's device: the same mask on every device.
    const at::Tensor keep = (mask_fn ? (*mask_fn)(i, name).to(at::kFloat)
                                     : dare_keep_mask(seed, config, r.members[i].index, name, offset, tau[i].numel(), d))
                                .view(tau[i].sizes())
                                .to(tau[i].device());
    const at::Tensor masked = tau[i] * keep;  // drop each entry with probability 1 − d
    const std::string& how = r.params.choice("rescale");
    if (how == "inverse_density") {
      out.push_back(kernels::div_by(masked, d));
    } else if (how == "l1") {
      // mergekit >= 0.1: match the L1 norm of the unmasked delta (skipped below 1e-7, as there).
      const double before = tau[i].abs().sum().item<double>(), after = masked.abs().sum().item<double>();
      out.push_back(before < 1e-7 || after < 1e-7 ? masked : masked * static_cast<float>(before / after));
    } else {
      out.push_back(masked);
    }
  }
  return out;
}

// TIES trim + consensus in one of its two variants.
kernels::Parts ties_parts(const MergeRequest& r, const GlobalStats& g, const std::vector<at::Tensor>& tau) {
  std::vector<at::Tensor> trimmed;
  if (r.params.choice("trim") == "global") {
    for (std::size_t i = 0; i < tau.size(); ++i) trimmed.push_back(tau[i] * (tau[i].abs() >= g.trim_threshold[i]));
    const at::Tensor merged = kernels::ties_original(trimmed, g.majority_sign);
    return {merged, at::scalar_tensor(1.0, merged.options())};
  }
  for (std::size_t i = 0; i < tau.size(); ++i) trimmed.push_back(kernels::trim_top_k(tau[i], r.members[i].density));
  return kernels::ties_consensus(trimmed, weights_of(r), r.params.flag("normalize"));
}

// λ · merged task vector, with Subspace Boosting (TA+SB, TIES+SB) in the order the request names:
// oct2025 boosts the normalized, scaled delta; jan2026 boosts the raw sum, then normalizes and scales.
at::Tensor scaled_delta(const MergeRequest& r, const std::string& name, const kernels::Parts& parts) {
  const double lambda = r.params.number("lambda");
  const bool sb = r.method->id == MethodId::TaskArithmeticSb || r.method->id == MethodId::TiesSb;
  if (!sb || !is_boosted(name) || parts.raw.dim() != 2) return parts.normalized() * lambda;
  const double beta = r.params.number("beta");
  if (r.params.choice("sb_order") == "oct2025") return kernels::subspace_boost(parts.normalized() * lambda, beta);
  return kernels::subspace_boost(parts.raw, beta) / parts.divisor * lambda;
}

}  // namespace

bool is_svd_merged(const std::string& name, std::int64_t dim) {
  const model::TensorKind k = model::tensor_kind(name);
  return dim == 2 && k != model::TensorKind::Embed && k != model::TensorKind::LmHead;
}

bool is_boosted(const std::string& name) { return model::is_layer_projection(name); }

std::int64_t rows_per_block(std::int64_t row_elements) {
  return std::max<std::int64_t>(1, kRowBlockElements / std::max<std::int64_t>(1, row_elements));
}

TensorPass tensor_pass(const MethodInfo& m, const Params& p, const std::string& name, std::int64_t dim) {
  if (effective_scope(m, p) == Scope::Elementwise) return TensorPass::RowBlocks;
  switch (m.id) {
    case MethodId::TsvM:
    case MethodId::IsoC:
    case MethodId::IsoCts: return is_svd_merged(name, dim) ? TensorPass::WholeTensor : TensorPass::RowBlocks;
    case MethodId::TaskArithmeticSb:  // scaled_delta boosts 2-D layer projections only
      return is_boosted(name) && dim == 2 ? TensorPass::WholeTensor : TensorPass::RowBlocks;
    case MethodId::Ties: return p.choice("trim") == "per_tensor" ? TensorPass::TrimRulesThenRows : TensorPass::WholeTensor;
    case MethodId::TiesSb:  // after the trim, elementwise except where Subspace Boosting applies
      return p.choice("trim") == "per_tensor" && !(is_boosted(name) && dim == 2) ? TensorPass::TrimRulesThenRows
                                                                                : TensorPass::WholeTensor;
    case MethodId::ModelStock: return TensorPass::StockRatioThenRows;
    default: return TensorPass::WholeTensor;
  }
}

bool fused_on_cpu(const MethodInfo& m, const Params& p) {
  return m.id == MethodId::TaskArithmetic || (m.id == MethodId::Ties && p.choice("trim") == "per_tensor");
}

TensorPass tensor_pass(const MergeRequest& r, const std::string& name, std::int64_t dim) {
  return tensor_pass(*r.method, r.params, name, dim);
}

at::Tensor merge_trimmed_ties(const MergeRequest& r, const std::string& name, const at::Tensor& base,
                              const std::vector<at::Tensor>& trimmed) {
  return base + scaled_delta(r, name, kernels::ties_consensus(trimmed, weights_of(r), r.params.flag("normalize")));
}

at::Tensor dare_keep_mask(std::uint64_t seed, std::uint64_t config, int checkpoint_index, const std::string& tensor,
                          std::int64_t element_offset, std::int64_t numel, double density) {
  const std::uint64_t key = mix64(seed ^ mix64(config ^ mix64(static_cast<std::uint64_t>(checkpoint_index) ^
                                                              stable_hash(tensor))));
  at::Tensor mask = at::empty({numel}, at::kFloat);
  float* out = mask.data_ptr<float>();
  // Keep iff u < density, u uniform in [0, 1) from 53 bits of a counter-based hash.
  const double scale = 1.0 / 9007199254740992.0;
  at::parallel_for(0, numel, 1 << 16, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i) {
      const std::uint64_t h = mix64(key + static_cast<std::uint64_t>(element_offset + i) * 0xD1B54A32D192ED03ull);
      out[i] = static_cast<double>(h >> 11) * scale < density ? 1.0f : 0.0f;
    }
  });
  return mask;
}

at::Tensor merge_tensor(const MergeRequest& r, const GlobalStats& g, const std::string& name, const at::Tensor& base,
                        const std::vector<at::Tensor>& tau, std::int64_t element_offset, const DareMaskFn* dare_mask) {
  const Params& p = r.params;
  switch (r.method->id) {
    case MethodId::Linear: return kernels::linear(base, tau, weights_of(r), p.flag("normalize"));
    case MethodId::Slerp: return kernels::slerp(base, base + tau[0], p.number("t"), p.choice("granularity") == "row");
    case MethodId::TaskArithmetic: {
      // One fused pass (bitwise the same as base + scaled_delta(weighted_sum(...)): tested).
      at::Tensor out = at::empty_like(base);
      std::vector<at::Tensor> c;
      std::vector<const at::Tensor*> ptrs;
      c.reserve(tau.size());
      ptrs.reserve(tau.size());
      for (const auto& t : tau) c.push_back(t.contiguous());
      for (const auto& t : c) ptrs.push_back(&t);
      kernels::task_arithmetic_into(out, base.contiguous(), ptrs, weights_of(r), p.flag("normalize"), p.number("lambda"));
      return out;
    }
    case MethodId::TaskArithmeticSb:
      return base + scaled_delta(r, name, kernels::weighted_sum(tau, weights_of(r), p.flag("normalize")));
    case MethodId::Ties:
    case MethodId::TiesSb: return base + scaled_delta(r, name, ties_parts(r, g, tau));
    case MethodId::DareTies:
      return base + scaled_delta(r, name, kernels::ties_consensus(dare(r, name, tau, element_offset, dare_mask),
                                                                  weights_of(r), p.flag("normalize")));
    case MethodId::DareLinear:
      return base + scaled_delta(r, name, kernels::weighted_sum(dare(r, name, tau, element_offset, dare_mask),
                                                                weights_of(r), p.flag("normalize")));
    case MethodId::ModelStock:
      return kernels::model_stock(base, tau, p.flag("filter_wise"), p.choice("cosine_mean") == "angle");
    case MethodId::TsvM:
    case MethodId::IsoC:
    case MethodId::IsoCts: {
      // Vectors, norms, embeddings and lm_head: the plain mean of the task vectors.
      if (!is_svd_merged(name, base.dim())) return base + kernels::mean_by_division(at::stack(tau), 0) * p.number("alpha");
      const at::Tensor delta = r.method->id == MethodId::TsvM   ? kernels::tsv_m_delta(tau)
                               : r.method->id == MethodId::IsoC ? kernels::iso_c_delta(tau)
                                                                : kernels::iso_cts_delta(tau, p.number("common_fraction"));
      return base + delta * p.number("alpha");
    }
  }
  fail("", r.method->name, "internal: method has no kernel");
}

}  // namespace ms::merge
