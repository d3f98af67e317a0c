// SLERP: spherical interpolation between the base (t = 0) and one model (t = 1). On the CPU in two
// streamed passes (kernels::pairwise_stream): the norms and the dot product, then the mix.
#include <algorithm>
#include <cmath>

#include "parts.hpp"

namespace ms::merge::methods {
namespace {

class Slerp final : public Method {
 public:
  Slerp() : Method(info()) {}
  static MethodInfo info() {
    MethodInfo i;
    i.name = "slerp";
    i.summary = "spherical interpolation between the base (t=0) and one model (t=1)";
    i.reference_url = "https://en.wikipedia.org/wiki/Slerp";
    i.max_models = 1;
    i.scope = Scope::WholeTensor;
    i.plan_cost = 2;
    i.params = {parts::num("t", "0.5", 0, 1, "interpolation factor: 0 gives the base, 1 the other model"),
                parts::choice("granularity", "tensor", {"tensor", "row"},
                              "one angle per whole tensor (mergekit, the study's fork) or one per output row")};
    return i;
  }
  at::Tensor merge(const TensorInputs& in) const override {
    const Params& p = in.request.params;
    return kernels::slerp(in.base, in.base + in.tau[0], p.number("t"), p.choice("granularity") == "row");
  }
  bool fused_on_cpu(const Params&) const override { return true; }
  bool merge_fused_cpu(const FusedCall& c, FusedResult& res) const override {
    const Params& p = c.request.params;
    const std::int64_t n = c.base.numel();
    const bool per_row = p.choice("granularity") == "row" && c.base.dim() >= 1 && c.base.size(0) > 0;
    const std::int64_t group = per_row ? n / c.base.size(0) : n;
    const double t = p.number("t");
    return parts::report(kernels::pairwise_stream(c.out.data_ptr(), c.out.scalar_type(), parts::base_span(c),
                                                  parts::member_spans(c), n, std::max<std::int64_t>(group, 1),
                                                  {false, c.tau_given}, [t](double aa, double bb, double ab) {
                                                    return coefficients(t, aa, bb, ab);
                                                  }, c.with_stats),
                         res);
  }
  // kernels::slerp's rule from the vectors' sums: norms at or below 1e-8 count as 1; nearly
  // colinear vectors (|cos| > 0.9995) are interpolated linearly.
  static std::pair<float, float> coefficients(double t, double aa, double bb, double ab) {
    double na = std::sqrt(aa), nb = std::sqrt(bb);
    if (!(na > 1e-8)) na = 1;
    if (!(nb > 1e-8)) nb = 1;
    const double dot = std::clamp(ab / (na * nb), -1.0, 1.0);
    if (std::fabs(dot) > 0.9995) return {static_cast<float>(1 - t), static_cast<float>(t)};
    const double theta = std::acos(dot), s = std::sin(theta);
    return {static_cast<float>(std::sin((1 - t) * theta) / s), static_cast<float>(std::sin(t * theta) / s)};
  }
  MergekitForm mergekit_form(const MergeRequest& r) const override {
    MergekitForm f;
    if (r.params.choice("granularity") != "tensor") f.refusal = "granularity=" + r.params.choice("granularity");
    f.method = name;
    f.params["t"] = format_number(r.params.number("t"));
    f.base_is_first_model = true;  // mergekit: the base and one model
    return f;
  }
};

}  // namespace

std::unique_ptr<Method> slerp() { return std::make_unique<Slerp>(); }

}  // namespace ms::merge::methods
