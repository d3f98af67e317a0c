// DELLA (https://arxiv.org/abs/2406.11617), as mergekit 0.1.5's generalized task arithmetic with
// its "della_magprune" sparsifier: each τ entry is kept with a probability that grows with its
// magnitude rank in its row (density ± epsilon), the kept entries rescaled so the τ keeps its L1
// norm (mergekit's rescale); then TIES's sign consensus (della) or a weighted sum (della_linear).
// The draw is mergesweep's counter-based hash, not torch's generator: a merge gives the same
// tensors on every rank, device and resume. The L1 rescale needs the whole tensor.
#include "della.hpp"

#include <ATen/Parallel.h>

#include <cstring>
#include <vector>

#include "mergesweep/core/error.hpp"
#include "mergesweep/core/hash.hpp"
#include "parts.hpp"

namespace ms::merge::della {

namespace {

// Stable ranks of one row's magnitudes by LSD radix sort on their bits (8 bits a pass: each pass
// is stable, so equal magnitudes keep index order, as a stable sort's; NaN, with any payload, last).
void row_ranks(const float* x, std::int64_t cols, float* rank, std::vector<std::uint32_t>& key,
               std::vector<std::uint32_t>& order, std::vector<std::uint32_t>& next) {
  key.resize(static_cast<std::size_t>(cols)), order.resize(key.size()), next.resize(key.size());
  for (std::int64_t j = 0; j < cols; ++j) {
    std::uint32_t b;
    std::memcpy(&b, &x[j], 4);
    b &= 0x7FFFFFFFu;  // |x|: non-negative floats order like their bits
    key[static_cast<std::size_t>(j)] = b > 0x7F800000u ? 0x7FC00000u : b;
    order[static_cast<std::size_t>(j)] = static_cast<std::uint32_t>(j);
  }
  for (int shift = 0; shift < 32; shift += 8) {
    std::uint32_t count[257] = {};
    for (std::uint32_t j : order) ++count[((key[j] >> shift) & 0xFFu) + 1];
    for (int d = 0; d < 256; ++d) count[d + 1] += count[d];
    for (std::uint32_t j : order) next[count[(key[j] >> shift) & 0xFFu]++] = j;
    order.swap(next);
  }
  for (std::int64_t r = 0; r < cols; ++r) rank[order[static_cast<std::size_t>(r)]] = static_cast<float>(r);
}

}  // namespace

at::Tensor magnitude_ranks(const at::Tensor& rows) {
  const std::int64_t cols = rows.size(1);
  if (!rows.device().is_cpu() || rows.scalar_type() != at::kFloat || cols >= (1 << 24)) {
    const at::Tensor order = std::get<1>(at::sort(rows.abs().contiguous(), /*stable=*/true, -1, /*descending=*/false));
    return at::empty_like(order).scatter_(-1, order, at::arange(cols, order.options()).expand_as(order)).to(at::kFloat);
  }
  const at::Tensor x = rows.contiguous();
  at::Tensor rank = at::empty(x.sizes(), at::kFloat);
  const float* in = x.data_ptr<float>();
  float* out = rank.data_ptr<float>();
  at::parallel_for(0, x.size(0), 1, [&](std::int64_t r0, std::int64_t r1) {
    std::vector<std::uint32_t> key, order, next;
    for (std::int64_t r = r0; r < r1; ++r) row_ranks(in + r * cols, cols, out + r * cols, key, order, next);
  });
  return rank;
}

at::Tensor keep_probabilities(const at::Tensor& tau, double density, double epsilon) {
  const at::Tensor rows = tau.dim() < 2 ? tau.reshape({1, -1}) : tau;
  const std::int64_t cols = rows.size(1);
  if (cols < 2) return at::full(tau.sizes(), density, tau.options());
  // Ranks along dim 1 (moved last): each entry's position in its row's ascending order.
  const at::Tensor rank = magnitude_ranks(rows.movedim(1, -1).reshape({-1, cols})).to(tau.device());
  // mergekit: (rank − min) / (max − min) with ranks 1..cols, a float32 division by cols − 1; then
  // (density − epsilon) + rank_norm · 2 · epsilon, each step in float32.
  const at::Tensor rank_norm = kernels::div_by(rank, static_cast<double>(cols - 1)).clamp(0, 1);
  const at::Tensor p = rank_norm * 2.0 * epsilon + (density - epsilon);
  const at::Tensor moved = rows.movedim(1, -1);
  return p.view(moved.sizes()).movedim(-1, 1).reshape(tau.sizes()).contiguous();
}

at::Tensor keep_mask(std::uint64_t seed, std::uint64_t config, int checkpoint_index, const std::string& tensor,
                     std::int64_t element_offset, const at::Tensor& probabilities) {
  const std::uint64_t key =
      mix64(seed ^ mix64(config ^ mix64(static_cast<std::uint64_t>(checkpoint_index) ^ stable_hash(tensor))));
  const at::Tensor p = probabilities.to(at::kCPU).to(at::kFloat).contiguous();
  at::Tensor mask = at::empty(p.sizes(), at::kFloat);
  const float* prob = p.data_ptr<float>();
  float* out = mask.data_ptr<float>();
  // u uniform in [0, 1) from 53 bits of the hash, as dare_keep_mask draws it.
  const double scale = 1.0 / 9007199254740992.0;
  at::parallel_for(0, p.numel(), 1 << 16, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i) {
      const std::uint64_t h = mix64(key + static_cast<std::uint64_t>(element_offset + i) * 0xD1B54A32D192ED03ull);
      out[i] = static_cast<double>(h >> 11) * scale < static_cast<double>(prob[i]) ? 1.0f : 0.0f;
    }
  });
  return mask;
}

}  // namespace ms::merge::della

namespace ms::merge::methods {
namespace {

// Member i's τ as mergekit's della_magprune leaves it: as it is at density 1 (no rescale either);
// otherwise dropped (the counter-based mask, or the test hook's) and L1-rescaled when `rescale`.
at::Tensor della_dropped(const TensorInputs& in, std::size_t i) {
  const MergeRequest& r = in.request;
  const at::Tensor& tau = in.tau[i];
  const double density = r.members[i].density;
  if (density >= 1) return tau;
  at::Tensor keep;
  if (in.dare_mask) {
    keep = (*in.dare_mask)(i, in.name).to(at::kFloat);
  } else {
    const at::Tensor p = della::keep_probabilities(tau, density, r.params.number("epsilon"));
    keep = della::keep_mask(static_cast<std::uint64_t>(r.params.number("seed")), r.config_hash(), r.members[i].index,
                            in.name, in.element_offset, p);
  }
  const at::Tensor masked = tau * keep.view(tau.sizes()).to(tau.device());
  return r.params.flag("rescale") ? parts::l1_rescaled(tau, masked) : masked;
}

class Della final : public Method {
 public:
  explicit Della(bool consensus) : Method(info(consensus)), consensus_(consensus) {}
  static MethodInfo info(bool consensus) {
    MethodInfo i;
    i.name = consensus ? "della" : "della_linear";
    i.summary = consensus ? "random drop, more likely for small magnitudes, L1 rescale, then TIES sign consensus"
                          : "random drop, more likely for small magnitudes, L1 rescale, then a weighted sum";
    i.reference_url = "https://arxiv.org/abs/2406.11617";
    i.scope = Scope::WholeTensor;
    i.uses_weight = true;
    i.uses_density = true;
    i.plan_cost = 5;  // a sort of each member's rows and the draw
    i.accepts_int8_mask = true;
    i.params = {
        parts::lambda(),
        parts::normalize(consensus ? "true" : "false",
                         consensus ? "weighted disjoint mean instead of a sum" : "divide by the sum of the weights"),
        parts::flag("rescale", "true", "rescale the kept entries so each tau keeps its L1 norm (mergekit's rescale)"),
        parts::num("epsilon", "0.15", 0, 1,
                   "keep probabilities range over density +/- epsilon, by magnitude rank within each row"),
        parts::seed()};
    return i;
  }
  // mergekit raises the same error when it reaches the tensor; here before any tensor is read.
  void validate(const MergeRequest& r, const std::string& file) const override {
    const double eps = r.params.number("epsilon");
    for (const auto& m : r.members) {
      if (m.density < 1 && (m.density - eps <= 0 || m.density + eps >= 1))
        fail(file, "epsilon",
             "epsilon " + format_number(eps) + " with density " + format_number(m.density) + " of " + m.name +
                 ": the keep probabilities density +/- epsilon must lie in (0, 1)");
    }
  }
  at::Tensor merge(const TensorInputs& in) const override {
    std::vector<at::Tensor> sparse;
    for (std::size_t i = 0; i < in.tau.size(); ++i) sparse.push_back(della_dropped(in, i));
    return parts::generalized_task_arithmetic(in, sparse, consensus_);
  }
  // epsilon is per model in mergekit; one value for every model is the same written globally.
  MergekitForm mergekit_form(const MergeRequest& r) const override {
    MergekitForm f = parts::task_arithmetic_form(r);
    f.params["rescale"] = r.params.flag("rescale") ? "true" : "false";
    f.params["epsilon"] = format_number(r.params.number("epsilon"));
    f.note =
        "DELLA: mergekit draws its drop masks from torch's generator (mergekit-yaml --random-seed), not from\n"
        "mergesweep's seed " +
        format_number(r.params.number("seed")) + ": the same method and parameters, another draw.";
    return f;
  }

 private:
  bool consensus_;
};

}  // namespace

std::unique_ptr<Method> della() { return std::make_unique<Della>(true); }
std::unique_ptr<Method> della_linear() { return std::make_unique<Della>(false); }

}  // namespace ms::merge::methods
