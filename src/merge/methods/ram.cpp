// Reinforced Agent Merging (mergekit 0.1.5, https://arxiv.org/abs/2601.13572): entries that one
// model alone changes (|τ| > epsilon) keep that change, entries several change get their mean;
// RAM+ tensor-local also scales each model's unique entries up by its share of shared ones.
#include <algorithm>

#include "parts.hpp"

namespace ms::merge::methods {
namespace {

// mergekit's _prepare_ram_vectors, one member at a time: the entries over epsilon kept.
struct RamVectors {
  std::vector<at::Tensor> kept;     // float32: τᵢ where |τᵢ| > epsilon, else 0
  std::vector<at::Tensor> nonzero;  // bool: |τᵢ| > epsilon
  at::Tensor counts;                // int64: how many members change each entry
  at::Tensor overlap;               // counts > 1
  at::Tensor unique;                // counts == 1
};

RamVectors ram_vectors(const std::vector<at::Tensor>& tau, double epsilon) {
  RamVectors v;
  v.counts = at::zeros(tau[0].sizes(), tau[0].options().dtype(at::kLong));
  for (const at::Tensor& t : tau) {
    v.nonzero.push_back(t.abs() > epsilon);
    v.kept.push_back(t * v.nonzero.back());
    v.counts += v.nonzero.back();
  }
  v.overlap = v.counts > 1;
  v.unique = v.counts == 1;
  return v;
}

// Σᵢ (keptᵢ · unique · boostᵢ + keptᵢ · overlap / max(count, 1)), members added in order (mergekit's
// sum over the stacked members, as the CPU sums them, and the same on every device).
at::Tensor ram_delta(const RamVectors& v, const std::vector<at::Tensor>& boost) {
  const at::Tensor divisor = v.counts.clamp_min(1);
  at::Tensor sum;
  for (std::size_t i = 0; i < v.kept.size(); ++i) {
    at::Tensor unique = v.kept[i] * v.unique;
    if (!boost.empty()) unique = unique * boost[i];
    const at::Tensor term = unique + v.kept[i] * v.overlap / divisor;
    sum = i == 0 ? term : sum + term;
  }
  return sum;
}

ParamDef epsilon() { return parts::num("epsilon", "1e-5", 0, 1e6, "a model changes an entry when |tau| > epsilon"); }

MergekitForm ram_form(const MergeRequest& r) {
  MergekitForm f;
  f.method = r.method->name;
  for (const auto& p : r.method->params) f.params[p.name] = format_number(r.params.number(p.name));
  return f;
}

class Ram final : public Method {
 public:
  Ram() : Method(info()) {}
  static MethodInfo info() {
    MethodInfo i;
    i.name = "ram";
    i.summary = "an entry one model changes keeps its change; entries several change get their mean";
    i.reference_url = "https://arxiv.org/abs/2601.13572";
    i.plan_cost = 2;
    i.params = {epsilon()};
    return i;
  }
  // The same float32 operations in the same order as mergekit's ram_merge.
  at::Tensor merge(const TensorInputs& in) const override {
    return in.base + ram_delta(ram_vectors(in.tau, in.request.params.number("epsilon")), {});
  }
  bool fused_on_cpu(const Params&) const override { return true; }
  // One pass, bitwise the path above (kernels::ram_stream).
  bool merge_fused_cpu(const FusedCall& c, FusedResult& res) const override {
    return parts::report(kernels::ram_stream(c.out.data_ptr(), c.out.scalar_type(), parts::base_span(c),
                                             parts::member_spans(c), c.base.numel(), c.request.params.number("epsilon"),
                                             {}, c.tau_given, c.with_stats),
                         res);
  }
  MergekitForm mergekit_form(const MergeRequest& r) const override { return ram_form(r); }
};

class RamPlusTl final : public Method {
 public:
  RamPlusTl() : Method(info()) {}
  static MethodInfo info() {
    MethodInfo i;
    i.name = "ramplus_tl";
    i.summary = "RAM, with each model's unique entries scaled by 1 + r * min(shared/unique count, alpha) per tensor";
    i.reference_url = "https://arxiv.org/abs/2601.13572";
    i.scope = Scope::WholeTensor;
    i.plan_cost = 3;
    i.params = {parts::num("r", "0.1", -1e6, 1e6, "scale of the boost of a model's unique entries"),
                parts::num("alpha", "0.2", 0, 1e6, "cap of the shared/unique count ratio"), epsilon()};
    return i;
  }
  // The same float32 operations in the same order as mergekit's ramplus_tl_merge; the counts are
  // widened to float32 as torch's type promotion widens them.
  at::Tensor merge(const TensorInputs& in) const override {
    const Params& p = in.request.params;
    const double eps = p.number("epsilon");
    const RamVectors v = ram_vectors(in.tau, eps);
    std::vector<at::Tensor> boost;
    for (const at::Tensor& nz : v.nonzero) {
      const at::Tensor shared = (nz & v.overlap).sum().to(at::kFloat);
      const at::Tensor unique = (nz & v.unique).sum().to(at::kFloat);
      boost.push_back((shared / unique.clamp_min(eps)).clamp(0, p.number("alpha")) * p.number("r") + 1);
    }
    return in.base + ram_delta(v, boost);
  }
  bool fused_on_cpu(const Params&) const override { return true; }
  // Two passes, bitwise the path above: each member's shared and unique counts, then the merge.
  bool merge_fused_cpu(const FusedCall& c, FusedResult& res) const override {
    const Params& p = c.request.params;
    const double eps = p.number("epsilon");
    const std::vector<kernels::StoredSpan> spans = parts::member_spans(c);
    std::vector<float> boost;
    for (const kernels::RamCounts& k : kernels::ram_counts(parts::base_span(c), spans, c.base.numel(), eps, c.tau_given)) {
      // The 0-dim float32 operations above: counts widened, ÷ max(unique, ε), clamped to [0, α], × r + 1.
      const float ratio = static_cast<float>(k.shared) / std::max(static_cast<float>(k.unique), static_cast<float>(eps));
      boost.push_back(std::min(std::max(ratio, 0.0f), static_cast<float>(p.number("alpha"))) *
                          static_cast<float>(p.number("r")) + 1.0f);
    }
    return parts::report(kernels::ram_stream(c.out.data_ptr(), c.out.scalar_type(), parts::base_span(c), spans,
                                             c.base.numel(), eps, boost, c.tau_given, c.with_stats),
                         res);
  }
  MergekitForm mergekit_form(const MergeRequest& r) const override { return ram_form(r); }
};

}  // namespace

std::unique_ptr<Method> ram() { return std::make_unique<Ram>(); }
std::unique_ptr<Method> ramplus_tl() { return std::make_unique<RamPlusTl>(); }

}  // namespace ms::merge::methods
