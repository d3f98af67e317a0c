// SCE (https://arxiv.org/abs/2408.07990), as mergekit 0.1.5's sce: Select the entries where the
// members' τ vary most (top `select_topk` share of the nonzero variances), Calculate each member's
// weight from its mean squared τ, Erase the entries whose sign disagrees with the elected sign,
// then the weighted mean of what is left. Top-k and the weights need the whole tensor.
#include <cmath>

#include "parts.hpp"

namespace ms::merge::methods {
namespace {

// mergekit's sce_mask: 1 at the k largest variances across members, k = ⌊nonzero · select_topk⌋.
// mergekit computes k as an int64 tensor times a Python float, which torch does in float32; so
// does this, so that k is the same integer.
at::Tensor select_mask(const at::Tensor& stacked, double topk) {
  const at::Tensor var = at::var(stacked, {0}, /*unbiased=*/false, /*keepdim=*/false);
  const std::int64_t nonzero = at::count_nonzero(var).item<std::int64_t>();
  const auto k = static_cast<std::int64_t>(static_cast<float>(nonzero) * static_cast<float>(topk));
  at::Tensor mask = at::zeros_like(var);
  if (k == 0) return mask;
  const at::Tensor top = std::get<1>(at::topk(var.abs().reshape({-1}), k, 0, /*largest=*/true));
  mask.view({-1}).index_fill_(0, top, 1.0);
  return mask;
}

// mergekit's sce_weight: each member's mean squared τ over their sum (uniform when the sum is
// below 1e-6), one value per member, shaped to broadcast over the stacked τ.
at::Tensor member_weights(const at::Tensor& stacked) {
  const std::int64_t n = stacked.size(0);
  const at::Tensor w = stacked.square().reshape({n, -1}).mean(1);
  const float total = w.sum().item<float>();
  at::Tensor out = std::abs(total) < 1e-6f ? at::ones_like(w) / static_cast<double>(n) : w / static_cast<double>(total);
  while (out.dim() < stacked.dim()) out = out.unsqueeze(-1);
  return out;
}

class Sce final : public Method {
 public:
  Sce() : Method(info()) {}
  static MethodInfo info() {
    MethodInfo i;
    i.name = "sce";
    i.summary = "select high-variance entries, weight members by mean squared tau, erase minority signs, average";
    i.reference_url = "https://arxiv.org/abs/2408.07990";
    i.scope = Scope::WholeTensor;
    i.plan_cost = 4;  // variance, top-k and the stacked members
    i.accepts_int8_mask = true;
    i.params = {parts::num("select_topk", "1", 0, 1,
                           "share of the entries (of those whose variance across members is nonzero) kept, largest "
                           "variance first; 1 keeps all")};
    return i;
  }
  // The members stacked as mergekit stacks them, so that its reductions over members (variance,
  // sums) and over entries (mean squares) are the same ATen reductions on the same layout.
  at::Tensor merge(const TensorInputs& in) const override {
    at::Tensor tv = at::stack(in.tau, 0);
    const double topk = in.request.params.number("select_topk");
    if (topk < 1) tv.mul_(select_mask(tv, topk).unsqueeze(0));
    // TIES's election: the sign of the members' sum (ties to +); zeros never agree.
    const at::Tensor majority = at::where(tv.sum(0) >= 0, 1.0, -1.0).to(tv.scalar_type());
    const at::Tensor erased = member_weights(tv) * (tv.sign() == majority.unsqueeze(0));
    const at::Tensor merged = (tv * erased).sum(0);
    return in.base + merged / erased.sum(0).clamp_min(1e-6);
  }
  MergekitForm mergekit_form(const MergeRequest& r) const override {
    MergekitForm f;
    f.method = name;
    f.params["select_topk"] = format_number(r.params.number("select_topk"));
    return f;
  }
};

}  // namespace

std::unique_ptr<Method> sce() { return std::make_unique<Sce>(); }

}  // namespace ms::merge::methods
