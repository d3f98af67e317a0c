// TIES, then Subspace Boosting of the merged delta of each layer projection
// (https://arxiv.org/abs/2506.16506).
#include "parts.hpp"

namespace ms::merge::methods {
namespace {

class TiesSb final : public Method {
 public:
  TiesSb() : Method(info()) {}
  static MethodInfo info() {
    MethodInfo i;
    i.name = "ties_sb";
    i.summary = "TIES, then Subspace Boosting";
    i.reference_url = "https://arxiv.org/abs/2506.16506";
    i.scope = Scope::WholeTensor;
    i.uses_weight = true;
    i.uses_density = true;
    i.plan_cost = 8;
    i.params = {parts::lambda(), parts::normalize("true", "weighted disjoint mean instead of a sum"), parts::trim(),
                parts::beta(), parts::sb_order()};
    return i;
  }
  Scope scope_for(const Params& p) const override {
    return p.choice("trim") == "global" ? Scope::WholeModel : Scope::WholeTensor;
  }
  // After the trim, elementwise except where Subspace Boosting applies.
  TensorPass tensor_pass(const Params& p, const std::string& tensor, std::int64_t dim) const override {
    return p.choice("trim") == "per_tensor" && !(is_boosted(tensor) && dim == 2) ? TensorPass::TrimRulesThenRows
                                                                              : TensorPass::WholeTensor;
  }
  at::Tensor merge(const TensorInputs& in) const override {
    return in.base + parts::scaled_delta(in.request, in.name, parts::ties_parts(in), true);
  }
  at::Tensor merge_trimmed(const MergeRequest& r, const std::string& tensor, const at::Tensor& base,
                           const std::vector<at::Tensor>& trimmed) const override {
    const auto consensus = kernels::ties_consensus(trimmed, parts::weights_of(r), r.params.flag("normalize"));
    return base + parts::scaled_delta(r, tensor, consensus, true);
  }
};

}  // namespace

std::unique_ptr<Method> ties_sb() { return std::make_unique<TiesSb>(); }

}  // namespace ms::merge::methods
