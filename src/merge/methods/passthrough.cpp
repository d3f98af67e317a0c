// Passthrough: one model's tensors, optionally scaled (mergekit's `scale`, usually with a filter).
// Over slices it stacks layers from several models into a deeper model (merge_layer_stack.cpp).
#include "parts.hpp"

namespace ms::merge::methods {
namespace {

class Passthrough final : public Method {
 public:
  Passthrough() : Method(info()) {}
  static MethodInfo info() {
    MethodInfo i;
    i.name = "passthrough";
    i.summary = "one model's weights, scaled; over slices, a stack of layers from several models";
    i.reference_url = "https://github.com/arcee-ai/mergekit";
    i.needs_base = false;
    i.max_models = 1;
    i.stacks_layers = true;
    i.params = {parts::num("scale", "1", -1e6, 1e6, "multiplies the tensors (with a filter: some of them)")};
    return i;
  }
  at::Tensor merge(const TensorInputs& in) const override {
    // θ₀ + τ is the model's own tensor when the model anchors itself (no base: τ = 0, exact).
    const at::Tensor model = in.tau.empty() ? in.base : in.base + in.tau[0];
    const double scale = in.request.params.number("scale");
    return scale == 1.0 ? model.clone() : model * scale;
  }
  bool fused_on_cpu(const Params&) const override { return true; }
  // One pass, bitwise the generic path (kernels::elementwise_stream).
  bool merge_fused_cpu(const FusedCall& c, FusedResult& res) const override {
    const std::vector<kernels::StoredSpan> spans = parts::member_spans(c);
    return parts::report(kernels::elementwise_stream(c.out.data_ptr(), c.out.scalar_type(), parts::base_span(c),
                                                     spans.empty() ? kernels::StoredSpan{} : spans[0], c.base.numel(),
                                                     kernels::ElementwiseOp::Scale, c.request.params.number("scale"),
                                                     c.tau_given, c.with_stats),
                         res);
  }
  MergekitForm mergekit_form(const MergeRequest& r) const override {
    MergekitForm f;
    f.method = name;
    if (r.params.number("scale") != 1.0) f.params["scale"] = format_number(r.params.number("scale"));
    return f;
  }
};

}  // namespace

std::unique_ptr<Method> passthrough() { return std::make_unique<Passthrough>(); }

}  // namespace ms::merge::methods
