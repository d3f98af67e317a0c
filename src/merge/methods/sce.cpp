// SCE (https://arxiv.org/abs/2408.07990), as mergekit 0.1.5's sce: Select the entries where the
// members' τ vary most (top `select_topk` share of the nonzero variances), Calculate each member's
// weight from its mean squared τ, Erase the entries whose sign disagrees with the elected sign,
// then the weighted mean of what is left. Top-k and the weights need the whole tensor; the
// members' stack is formed a chunk of columns at a time.
#include <algorithm>
#include <cmath>

#include "parts.hpp"

namespace ms::merge::methods {
namespace {

// The members' τ over flat elements [begin, begin + len), stacked as mergekit stacks them [n, len].
at::Tensor stacked_chunk(const std::vector<at::Tensor>& flat, std::int64_t begin, std::int64_t len) {
  std::vector<at::Tensor> parts;
  parts.reserve(flat.size());
  for (const auto& t : flat) parts.push_back(t.narrow(0, begin, len));
  return at::stack(parts, 0);
}

// Runs fn(begin, len, stacked) over the tensor in chunks of columns: each element's reductions
// over the members are the same ATen reductions as on the whole stack (each output element sums
// its own n values in member order), without the whole [n, N] stack and its temporaries.
template <typename Fn>
void for_each_chunk(const std::vector<at::Tensor>& flat, Fn&& fn) {
  constexpr std::int64_t kChunk = 1 << 18;
  const std::int64_t total = flat.front().numel();
  for (std::int64_t b = 0; b < total; b += kChunk) {
    const std::int64_t len = std::min(kChunk, total - b);
    fn(b, len, stacked_chunk(flat, b, len));
  }
}

// mergekit's sce_mask: 1 at the k largest variances across members, k = ⌊nonzero · select_topk⌋.
// mergekit computes k as an int64 tensor times a Python float, which torch does in float32; so
// does this, so that k is the same integer.
at::Tensor select_mask(const std::vector<at::Tensor>& flat, double topk) {
  const at::Tensor var = kernels::member_variance(flat);
  const std::int64_t nonzero = at::count_nonzero(var).item<std::int64_t>();
  const auto k = static_cast<std::int64_t>(static_cast<float>(nonzero) * static_cast<float>(topk));
  at::Tensor mask = at::zeros_like(var);
  if (k == 0) return mask;
  // Unsorted: the same selection (the order of the indices is not used), without sorting k values.
  const at::Tensor top = std::get<1>(at::topk(var.abs(), k, 0, /*largest=*/true, /*sorted=*/false));
  mask.index_fill_(0, top, 1.0);
  return mask;
}

// mergekit's sce_weight: each member's mean squared τ (after the mask) over their sum (uniform
// when the sum is below 1e-6), shaped [n, 1] to broadcast over a stacked chunk. The means are
// float64 sums over the chunks (mergekit's are float32 reductions: they differ by rounding).
at::Tensor member_weights(const std::vector<at::Tensor>& flat, const at::Tensor* mask) {
  const auto n = static_cast<std::int64_t>(flat.size());
  at::Tensor sq = at::zeros({n}, flat.front().options().dtype(at::kDouble));
  for_each_chunk(flat, [&](std::int64_t b, std::int64_t len, const at::Tensor& chunk) {
    const at::Tensor x = mask ? chunk * mask->narrow(0, b, len).unsqueeze(0) : chunk;
    sq.add_(x.square().sum(1, false, at::kDouble));
  });
  const at::Tensor w = kernels::div_by(sq, static_cast<double>(flat.front().numel())).to(at::kFloat);
  const float total = w.sum().item<float>();
  const at::Tensor out = std::abs(total) < 1e-6f ? at::ones_like(w) / static_cast<double>(n) : w / static_cast<double>(total);
  return out.unsqueeze(-1);
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
  // mergekit's order: mask, the sign election on the masked τ, the members' weights, the weighted
  // mean of the agreeing entries; column chunk by column chunk (for_each_chunk).
  at::Tensor merge(const TensorInputs& in) const override {
    std::vector<at::Tensor> flat;
    for (const auto& t : in.tau) flat.push_back(t.contiguous().reshape(-1));
    if (flat.front().numel() == 0) return in.base.clone();
    const double topk = in.request.params.number("select_topk");
    const at::Tensor mask = topk < 1 ? select_mask(flat, topk) : at::Tensor();
    const at::Tensor* m = mask.defined() ? &mask : nullptr;
    const at::Tensor weights = member_weights(flat, m);
    at::Tensor merged = at::empty({flat.front().numel()}, flat.front().options());
    for_each_chunk(flat, [&](std::int64_t b, std::int64_t len, at::Tensor tv) {
      if (m) tv.mul_(m->narrow(0, b, len).unsqueeze(0));
      // TIES's election: the sign of the members' sum (ties to +); zeros never agree.
      const at::Tensor majority = at::where(tv.sum(0) >= 0, 1.0, -1.0).to(tv.scalar_type());
      const at::Tensor erased = weights * (tv.sign() == majority.unsqueeze(0));
      merged.narrow(0, b, len).copy_((tv * erased).sum(0) / erased.sum(0).clamp_min(1e-6));
    });
    return in.base + merged.view(in.base.sizes());
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
