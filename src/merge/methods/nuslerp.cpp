// NuSLERP (mergekit 0.1.5): spherical interpolation of two models, or of their task vectors when
// there is a base, with the interpolation factor from the two weights, over the flattened tensor,
// each row, or each column.
#include <algorithm>
#include <cmath>

#include "parts.hpp"

namespace ms::merge::methods {
namespace {

// Spherical interpolation of v0 and v1 along their last dimension (after flattening, or with
// `row_wise` along the first), as mergekit's nuslerp(): the same float32 operations in the same
// order, so that the fixtures match to rounding.
at::Tensor nuslerp_pair(double t, at::Tensor v0, at::Tensor v1, bool row_wise, bool flatten) {
  const std::vector<std::int64_t> shape = v0.sizes().vec();
  if (flatten) {
    v0 = v0.reshape(-1);
    v1 = v1.reshape(-1);
  } else if (row_wise) {
    v0 = v0.transpose(0, -1);
    v1 = v1.transpose(0, -1);
  }
  // mergekit clamps the norms at 1e-7 (its _normalize), and calls pairs whose sine is below 1e-8
  // colinear: those are interpolated linearly.
  const auto unit = [](const at::Tensor& x) { return x / at::linalg_vector_norm(x, 2, {-1}, true).clamp_min(1e-7); };
  const at::Tensor cos = (unit(v0) * unit(v1)).sum(-1, true).clamp(-1, 1);
  const at::Tensor colinear = (1 - cos.square()) <= 1e-16;
  const at::Tensor theta = at::acos(at::where(colinear, at::zeros_like(cos), cos));
  const at::Tensor sin_theta = at::sin(theta);
  at::Tensor result = (at::sin(theta * (1 - t)) * v0 + at::sin(theta * t) * v1) / sin_theta;
  result = at::where(colinear, v0 * (1 - t) + v1 * t, result);
  if (row_wise && !flatten) result = result.transpose(0, -1);
  return result.reshape(shape);
}

class Nuslerp final : public Method {
 public:
  Nuslerp() : Method(info()) {}
  static MethodInfo info() {
    MethodInfo i;
    i.name = "nuslerp";
    i.summary = "spherical interpolation of two models (of their task vectors with a base), t = w2 / (w1 + w2)";
    i.reference_url = "https://github.com/arcee-ai/mergekit/blob/main/docs/merge_methods.md";
    i.needs_base = false;
    i.min_models = 2;
    i.max_models = 2;
    i.scope = Scope::WholeTensor;
    i.uses_weight = true;
    i.plan_cost = 2;
    i.params = {parts::flag("nuslerp_row_wise", "false",
                            "interpolate each column (the vectors along the first dimension) instead of each row; "
                            "only without nuslerp_flatten"),
                parts::flag("nuslerp_flatten", "true", "interpolate the whole flattened tensor as one vector")};
    return i;
  }
  at::Tensor merge(const TensorInputs& in) const override {
    const MergeRequest& r = in.request;
    const double t = interpolation_factor(r);
    const bool row_wise = r.params.flag("nuslerp_row_wise"), flatten = r.params.flag("nuslerp_flatten");
    // Without a base, θ₀ is the first model itself (its τ is zero): the models are interpolated.
    if (r.base_is_first_member) return nuslerp_pair(t, in.base, in.base + in.tau[1], row_wise, flatten);
    return in.base + nuslerp_pair(t, in.tau[0], in.tau[1], row_wise, flatten);
  }
  // Fused on the CPU unless it interpolates columns (strided vectors).
  bool fused_on_cpu(const Params& p) const override { return p.flag("nuslerp_flatten") || !p.flag("nuslerp_row_wise"); }
  bool merge_fused_cpu(const FusedCall& c, FusedResult& res) const override {
    const MergeRequest& r = c.request;
    if (!fused_on_cpu(r.params)) return false;
    const std::int64_t n = c.base.numel();
    const std::int64_t group = r.params.flag("nuslerp_flatten") || c.base.dim() == 0 ? n : c.base.size(-1);
    const double t = interpolation_factor(r);
    return parts::report(kernels::pairwise_stream(c.out.data_ptr(), c.out.scalar_type(), parts::base_span(c),
                                                  parts::member_spans(c), n, std::max<std::int64_t>(group, 1),
                                                  {!r.base_is_first_member, c.tau_given},
                                                  [t](double aa, double bb, double ab) {
                                                    return coefficients(t, aa, bb, ab);
                                                  }, c.with_stats),
                         res);
  }
  static double interpolation_factor(const MergeRequest& r) {
    const double w0 = r.members[0].weight, w1 = r.members[1].weight;
    return std::abs(w0 + w1) < 1e-6 ? 0.5 : w1 / (w0 + w1);
  }
  // nuslerp_pair's rule from the vectors' sums: norms clamped at 1e-7; colinear where
  // 1 − cos² ≤ 1e-16 in float32, as the tensor kernel (and mergekit) decides it.
  static std::pair<float, float> coefficients(double t, double aa, double bb, double ab) {
    const double cos = std::clamp(ab / (std::max(std::sqrt(aa), 1e-7) * std::max(std::sqrt(bb), 1e-7)), -1.0, 1.0);
    const auto cf = static_cast<float>(cos);
    if (1.0f - cf * cf <= 1e-16f) return {static_cast<float>(1 - t), static_cast<float>(t)};
    const double theta = std::acos(cos), s = std::sin(theta);
    return {static_cast<float>(std::sin(theta * (1 - t)) / s), static_cast<float>(std::sin(theta * t) / s)};
  }
  MergekitForm mergekit_form(const MergeRequest& r) const override {
    MergekitForm f;
    f.writes_base_model = !r.base_is_first_member;  // task vectors from the base, as in the merge
    f.method = name;
    f.params["nuslerp_row_wise"] = r.params.flag("nuslerp_row_wise") ? "true" : "false";
    f.params["nuslerp_flatten"] = r.params.flag("nuslerp_flatten") ? "true" : "false";
    return f;
  }
};

}  // namespace

std::unique_ptr<Method> nuslerp() { return std::make_unique<Nuslerp>(); }

}  // namespace ms::merge::methods
