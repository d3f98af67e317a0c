// Task arithmetic, then Subspace Boosting of the merged delta of each layer projection
// (https://arxiv.org/abs/2506.16506).
#include "parts.hpp"

namespace ms::merge::methods {
namespace {

class TaskArithmeticSb final : public Method {
 public:
  TaskArithmeticSb() : Method(info()) {}
  static MethodInfo info() {
    MethodInfo i;
    i.name = "task_arithmetic_sb";
    i.summary = "task arithmetic, then Subspace Boosting";
    i.reference_url = "https://arxiv.org/abs/2506.16506";
    i.scope = Scope::WholeTensor;
    i.uses_weight = true;
    i.plan_cost = 8;
    i.params = {parts::lambda(), parts::normalize("false", "divide the weighted sum by the sum of the weights"),
                parts::beta(), parts::sb_order()};
    return i;
  }
  // scaled_delta boosts 2-D layer projections only; the rest is elementwise.
  TensorPass tensor_pass(const Params&, const std::string& tensor, std::int64_t dim) const override {
    return is_boosted(tensor) && dim == 2 ? TensorPass::WholeTensor : TensorPass::RowBlocks;
  }
  at::Tensor merge(const TensorInputs& in) const override {
    const Params& p = in.request.params;
    const auto sum = kernels::weighted_sum(in.tau, parts::weights_of(in.request), p.flag("normalize"));
    return in.base + parts::scaled_delta(in.request, in.name, sum, true);
  }
};

}  // namespace

std::unique_ptr<Method> task_arithmetic_sb() { return std::make_unique<TaskArithmeticSb>(); }

}  // namespace ms::merge::methods
