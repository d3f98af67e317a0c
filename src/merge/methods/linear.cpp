// Linear: a weighted average of the models' weights (model soups).
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
