// NearSwap (mergekit 0.1.5): take the model's value where it is close to the base's, keep the
// base's where they are far apart: weight = clamp(t / |θ₀ − θ₁|, 0, 1) per entry.
#include "parts.hpp"

namespace ms::merge::methods {
namespace {

class Nearswap final : public Method {
 public:
  Nearswap() : Method(info()) {}
  static MethodInfo info() {
    MethodInfo i;
    i.name = "nearswap";
    i.summary = "per entry, interpolate toward the model by t / |theta1 - theta0| (clamped to [0, 1])";
    i.reference_url = "https://huggingface.co/alchemonaut/QuartetAnemoi-70B-t0.0001";
    i.max_models = 1;
    i.plan_cost = 2;
    // mergekit requires t; the default is the value of the model the method comes from.
    i.params = {
        parts::num("t", "0.0001", 0, 1e6, "distance scale: entries closer than t to the base take the model's value")};
    return i;
  }
  // mergekit's nearswap_merge: the same float32 operations in the same order. |θ₀ − θ₁| is |τ|
  // exactly (float subtraction is antisymmetric), and t / x is reciprocal(x) · t, as torch's
  // scalar / tensor computes it.
  at::Tensor merge(const TensorInputs& in) const override {
    const double t = in.request.params.number("t");
    const at::Tensor& a = in.base;
    const at::Tensor b = in.base + in.tau[0];
    const at::Tensor weight = (in.tau[0].abs().clamp_min(1e-6).reciprocal() * t).clamp(0, 1);
    return weight * b + (1 - weight) * a;
  }
  bool fused_on_cpu(const Params&) const override { return true; }
  // One pass, bitwise the generic path (kernels::elementwise_stream).
  bool merge_fused_cpu(const FusedCall& c, FusedResult& res) const override {
    return parts::report(kernels::elementwise_stream(c.out.data_ptr(), c.out.scalar_type(), parts::base_span(c),
                                                     parts::member_spans(c).at(0), c.base.numel(),
                                                     kernels::ElementwiseOp::Nearswap, c.request.params.number("t"),
                                                     c.tau_given, c.with_stats),
                         res);
  }
  MergekitForm mergekit_form(const MergeRequest& r) const override {
    MergekitForm f;
    f.method = name;
    f.params["t"] = format_number(r.params.number("t"));
    return f;
  }
};

}  // namespace

std::unique_ptr<Method> nearswap() { return std::make_unique<Nearswap>(); }

}  // namespace ms::merge::methods
