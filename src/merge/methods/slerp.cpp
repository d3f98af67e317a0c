// SLERP: spherical interpolation between the base (t = 0) and one model (t = 1).
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
