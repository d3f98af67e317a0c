// Task arithmetic: θ₀ + λ·Σ wᵢ τᵢ (÷ Σ wᵢ when normalize). One fused pass on the CPU.
#include "parts.hpp"

namespace ms::merge::methods {
namespace {

class TaskArithmetic final : public Method {
 public:
  TaskArithmetic() : Method(info()) {}
  static MethodInfo info() {
    MethodInfo i;
    i.name = "task_arithmetic";
    i.summary = "theta0 + lambda * sum_i w_i tau_i";
    i.reference_url = "https://arxiv.org/abs/2212.04089";
    i.uses_weight = true;
    i.accepts_int8_mask = true;
    i.mergekit_no_effect = {"density", "rescale"};
    i.params = {parts::lambda(), parts::normalize("false", "divide the weighted sum by the sum of the weights")};
    return i;
  }
  at::Tensor merge(const TensorInputs& in) const override {
    // One fused pass (bitwise the same as base + scaled_delta(weighted_sum(...)): tested).
    const Params& p = in.request.params;
    at::Tensor out = at::empty_like(in.base);
    std::vector<at::Tensor> c;
    std::vector<const at::Tensor*> ptrs;
    c.reserve(in.tau.size());
    ptrs.reserve(in.tau.size());
    for (const auto& t : in.tau) c.push_back(t.contiguous());
    for (const auto& t : c) ptrs.push_back(&t);
    kernels::task_arithmetic_into(out, in.base.contiguous(), ptrs, parts::weights_of(in.request), p.flag("normalize"),
                                  p.number("lambda"));
    return out;
  }
  bool fused_on_cpu(const Params&) const override { return true; }
  // Reads θᵢ and θ₀ as stored and forms τ in its loop: no member's τ is held whole.
  bool merge_fused_cpu(const FusedCall& c, FusedResult& res) const override {
    const Params& p = c.request.params;
    const std::vector<double> w = parts::weights_of(c.request);
    if (c.tau_given) {
      if (c.with_stats) return false;
      kernels::task_arithmetic_into(c.out, c.base, c.held, w, p.flag("normalize"), p.number("lambda"));
      return true;
    }
    return parts::report(kernels::task_arithmetic_stream(c.out.data_ptr(), c.out.scalar_type(), parts::base_span(c),
                                                         parts::member_spans(c), c.base.numel(), w, p.flag("normalize"),
                                                         p.number("lambda"), c.with_stats),
                         res);
  }
  MergekitForm mergekit_form(const MergeRequest& r) const override { return parts::task_arithmetic_form(r); }
};

}  // namespace

std::unique_ptr<Method> task_arithmetic() { return std::make_unique<TaskArithmetic>(); }

}  // namespace ms::merge::methods
