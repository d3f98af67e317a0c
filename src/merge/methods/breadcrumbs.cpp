// Model Breadcrumbs (https://arxiv.org/abs/2312.06795), as mergekit 0.1.5's generalized task
// arithmetic with its "magnitude_outliers" sparsifier: each τ keeps a band of magnitudes, the
// largest `gamma` share removed as outliers and the smallest removed down to `density`; then a
// weighted sum (breadcrumbs) or TIES's sign consensus (breadcrumbs_ties). Selecting by |τ| needs
// the whole tensor.
#include <algorithm>

#include "parts.hpp"

namespace ms::merge::methods {
namespace {

// The k smallest entries of `a` (flat) ordered by (value, index): those below the k-th smallest
// value, then the entries equal to it in index order until k are taken. A selection
// (kernels::kth_smallest), not a sort: O(n).
at::Tensor smallest_by_value_then_index(const at::Tensor& a, std::int64_t k) {
  if (k <= 0) return at::zeros(a.sizes(), a.options().dtype(at::kBool));
  if (k >= a.numel()) return at::ones(a.sizes(), a.options().dtype(at::kBool));
  const at::Tensor v = at::scalar_tensor(kernels::kth_smallest(a, k), a.options());
  const at::Tensor below = a < v, tied = a == v;
  const std::int64_t need = k - below.sum().item<std::int64_t>();
  at::Tensor out = below | tied;
  if (tied.sum().item<std::int64_t>() == need) return out;
  // Fewer ties are taken than there are: the first `need` by index (a scan that stops there).
  const at::Tensor tied_cpu = tied.to(at::kCPU).contiguous();
  const bool* t = tied_cpu.data_ptr<bool>();
  std::int64_t last = -1;
  for (std::int64_t i = 0, seen = 0; seen < need; ++i) seen += t[i], last = i;
  const std::int64_t rest = a.numel() - last - 1;
  out.narrow(0, last + 1, rest).copy_(below.narrow(0, last + 1, rest));
  return out;
}

// mergekit's magnitude_outliers mask: of |τ| in ascending order, the `target` = ⌊density·n⌋ entries
// that follow the n_bot = max(0, n − target − ⌊gamma·n⌋) smallest. When density + gamma > 1 the
// outlier cut shrinks so that `target` entries stay. Equal magnitudes are ordered by index, as a
// stable sort orders them (mergekit's torch.sort is not guaranteed stable; only exact ties can
// differ): the band is the n_bot + target smallest by (|τ|, index) less the n_bot smallest.
at::Tensor band_mask(const at::Tensor& tau, double density, double gamma) {
  const std::int64_t n = tau.numel();
  const auto target = static_cast<std::int64_t>(density * static_cast<double>(n));
  const auto n_top = static_cast<std::int64_t>(gamma * static_cast<double>(n));
  const std::int64_t n_bot = std::max<std::int64_t>(0, n - target - n_top);
  const at::Tensor mag = tau.reshape({-1}).abs();
  const at::Tensor band = smallest_by_value_then_index(mag, std::min(n, n_bot + target)) &
                          ~smallest_by_value_then_index(mag, n_bot);
  return band.to(tau.scalar_type()).view(tau.sizes());
}

// Each member's τ sparsified as mergekit's sparsify(magnitude_outliers) does: density 1 leaves it
// as it is (no rescale either), otherwise the band, then the L1 rescale when `rescale`.
std::vector<at::Tensor> band_pruned(const TensorInputs& in) {
  const MergeRequest& r = in.request;
  const double gamma = r.params.number("gamma");
  const bool rescale = r.params.flag("rescale");
  std::vector<at::Tensor> out;
  for (std::size_t i = 0; i < in.tau.size(); ++i) {
    const double density = r.members[i].density;
    if (density >= 1) {
      out.push_back(in.tau[i]);
      continue;
    }
    const at::Tensor masked = in.tau[i] * band_mask(in.tau[i], density, gamma);
    out.push_back(rescale ? parts::l1_rescaled(in.tau[i], masked) : masked);
  }
  return out;
}

class Breadcrumbs final : public Method {
 public:
  explicit Breadcrumbs(bool consensus) : Method(info(consensus)), consensus_(consensus) {}
  static MethodInfo info(bool consensus) {
    MethodInfo i;
    i.name = consensus ? "breadcrumbs_ties" : "breadcrumbs";
    i.summary = consensus ? "drop the largest (gamma) and smallest magnitudes of each tau, then TIES sign consensus"
                          : "drop the largest (gamma) and smallest magnitudes of each tau, then a weighted sum";
    i.reference_url = "https://arxiv.org/abs/2312.06795";
    i.scope = Scope::WholeTensor;
    i.uses_weight = true;
    i.uses_density = true;
    i.plan_cost = 4;  // two selections over each member's |tau|
    i.accepts_int8_mask = true;
    i.params = {
        parts::lambda(),
        parts::normalize("false",
                         consensus ? "weighted disjoint mean instead of a sum" : "divide by the sum of the weights"),
        parts::flag("rescale", "false", "rescale the kept entries so each tau keeps its L1 norm (mergekit's rescale)"),
        parts::num("gamma", "0.01", 0, 1, "share of each tau's largest magnitudes removed as outliers")};
    return i;
  }
  at::Tensor merge(const TensorInputs& in) const override {
    return parts::generalized_task_arithmetic(in, band_pruned(in), consensus_);
  }
  // gamma is per model in mergekit; one value for every model is the same written globally.
  MergekitForm mergekit_form(const MergeRequest& r) const override {
    MergekitForm f = parts::task_arithmetic_form(r);
    f.params["rescale"] = r.params.flag("rescale") ? "true" : "false";
    f.params["gamma"] = format_number(r.params.number("gamma"));
    return f;
  }

 private:
  bool consensus_;
};

}  // namespace

std::unique_ptr<Method> breadcrumbs() { return std::make_unique<Breadcrumbs>(false); }
std::unique_ptr<Method> breadcrumbs_ties() { return std::make_unique<Breadcrumbs>(true); }

}  // namespace ms::merge::methods
