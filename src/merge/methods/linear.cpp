// Linear: a weighted average of the models' weights (model soups). One fused pass on the CPU.
#include "mergesweep/core/error.hpp"
#include "parts.hpp"

namespace ms::merge::methods {
namespace {

class Linear final : public Method {
 public:
  Linear() : Method(info()) {}
  static MethodInfo info() {
    MethodInfo i;
    i.name = "linear";
    i.summary = "weighted average of the models' weights";
    i.reference_url = "https://arxiv.org/abs/2203.05482";
    i.needs_base = false;
    i.uses_weight = true;
    i.params = {parts::normalize("true", "divide by the sum of the weights")};
    return i;
  }
  void validate(const MergeRequest& r, const std::string& file) const override {
    double sum = 0;
    for (const auto& m : r.members) sum += m.weight;
    if (r.params.flag("normalize") && sum == 0.0)
      fail(file, "weight", "weights sum to zero, so normalize=true would divide by zero");
  }
  at::Tensor merge(const TensorInputs& in) const override {
    return kernels::linear(in.base, in.tau, parts::weights_of(in.request), in.request.params.flag("normalize"));
  }
  bool fused_on_cpu(const Params&) const override { return true; }
  // One pass per block over every member at its stored dtype (or over the float32 τ the resident
  // sweep holds): no float32 copy of any member is formed.
  bool merge_fused_cpu(const FusedCall& c, FusedResult& res) const override {
    return parts::report(kernels::linear_stream(c.out.data_ptr(), c.out.scalar_type(), parts::base_span(c),
                                                parts::member_spans(c), c.base.numel(), parts::weights_of(c.request),
                                                c.request.params.flag("normalize"), c.tau_given, c.with_stats),
                         res);
  }
  MergekitForm mergekit_form(const MergeRequest& r) const override {
    MergekitForm f;
    f.method = name;
    f.params["normalize"] = r.params.flag("normalize") ? "true" : "false";
    return f;
  }
};

}  // namespace

std::unique_ptr<Method> linear() { return std::make_unique<Linear>(); }

}  // namespace ms::merge::methods
