// DARE-TIES: drop each τ entry with probability 1 − density and rescale, then TIES's sign election
// and disjoint merge (https://arxiv.org/abs/2311.03099). Masks are counter-based (dare_keep_mask).
#include "parts.hpp"

namespace ms::merge::methods {
namespace {

class DareTies final : public Method {
 public:
  DareTies() : Method(info()) {}
  static MethodInfo info() {
    MethodInfo i;
    i.name = "dare_ties";
    i.summary = "random drop and rescale, then TIES sign election and disjoint merge";
    i.reference_url = "https://arxiv.org/abs/2311.03099";
    i.uses_weight = true;
    i.uses_density = true;
    i.accepts_int8_mask = true;
    i.params = {parts::lambda(), parts::normalize("false", "weighted disjoint mean instead of a sum"), parts::seed(),
                parts::rescale()};
    return i;
  }
  at::Tensor merge(const TensorInputs& in) const override {
    const MergeRequest& r = in.request;
    const auto consensus = kernels::ties_consensus(parts::dare(in), parts::weights_of(r), r.params.flag("normalize"));
    return in.base + parts::scaled_delta(r, in.name, consensus, false);
  }
  bool fused_on_cpu(const Params& p) const override { return fused_drop(p); }
  bool merge_fused_cpu(const FusedCall& c, FusedResult& res) const override {
    if (!fused_drop(c.request.params) || c.tau_given) return false;
    const kernels::DareDrop drop = drop_of(c);
    const std::vector<kernels::TrimRule> keep_all(c.held.size());
    std::vector<const kernels::TrimRule*> rules;
    for (const auto& k : keep_all) rules.push_back(&k);
    const Params& p = c.request.params;
    return parts::report(kernels::ties_into_stored(c.out, c.base, c.held, rules, parts::weights_of(c.request),
                                                   p.flag("normalize"), p.number("lambda"), &drop, c.with_stats),
                         res);
  }
  MergekitForm mergekit_form(const MergeRequest& r) const override { return dare_form(r); }

  // The fused kernels drop entry by entry; the L1 rescale needs each τ's whole sums first.
  static bool fused_drop(const Params& p) { return p.choice("rescale") != "l1"; }
  // parts::dare's draw: each member's key for this tensor, its density, the rescale.
  static kernels::DareDrop drop_of(const FusedCall& c) {
    const MergeRequest& r = c.request;
    kernels::DareDrop d;
    const auto seed = static_cast<std::uint64_t>(r.params.number("seed"));
    for (const auto& m : r.members) {
      d.key.push_back(dare_key(seed, r.config_hash(), m.index, c.tensor));
      d.density.push_back(m.density);
    }
    d.inverse_density = r.params.choice("rescale") == "inverse_density";
    return d;
  }

  // mergekit's rescale: true matches the L1 norm of the kept entries, false keeps them as they
  // are; it has no 1/density rescale. Its masks come from torch's generator.
  static MergekitForm dare_form(const MergeRequest& r) {
    MergekitForm f = parts::task_arithmetic_form(r);
    const std::string& how = r.params.choice("rescale");
    if (how == "inverse_density")
      f.refusal = "rescale=inverse_density (mergekit 0.1.5 rescales DARE by the L1 norm, rescale: true, "
                  "or not at all, rescale: false)";
    f.params["rescale"] = how == "l1" ? "true" : "false";
    f.note = "DARE: mergekit draws its drop masks from torch's generator (mergekit-yaml --random-seed), not from\n"
             "mergesweep's seed " + format_number(r.params.number("seed")) + ": the same method and parameters, another draw.";
    return f;
  }
};

class DareLinear final : public Method {
 public:
  DareLinear() : Method(info()) {}
  static MethodInfo info() {
    MethodInfo i;
    i.name = "dare_linear";
    i.summary = "random drop and rescale, then a weighted sum";
    i.reference_url = "https://arxiv.org/abs/2311.03099";
    i.uses_weight = true;
    i.uses_density = true;
    i.accepts_int8_mask = true;
    i.params = {parts::lambda(), parts::normalize("false", "divide by the sum of the weights"), parts::seed(),
                parts::rescale()};
    return i;
  }
  at::Tensor merge(const TensorInputs& in) const override {
    const MergeRequest& r = in.request;
    const auto sum = kernels::weighted_sum(parts::dare(in), parts::weights_of(r), r.params.flag("normalize"));
    return in.base + parts::scaled_delta(r, in.name, sum, false);
  }
  bool fused_on_cpu(const Params& p) const override { return DareTies::fused_drop(p); }
  // Task arithmetic's fused stream over the dropped τ (the same float operations as the sum above).
  bool merge_fused_cpu(const FusedCall& c, FusedResult& res) const override {
    if (!DareTies::fused_drop(c.request.params) || c.tau_given) return false;
    const kernels::DareDrop drop = DareTies::drop_of(c);
    const Params& p = c.request.params;
    return parts::report(kernels::task_arithmetic_stream(c.out.data_ptr(), c.out.scalar_type(), parts::base_span(c),
                                                         parts::member_spans(c), c.base.numel(), parts::weights_of(c.request),
                                                         p.flag("normalize"), p.number("lambda"), c.with_stats, &drop),
                         res);
  }
  MergekitForm mergekit_form(const MergeRequest& r) const override { return DareTies::dare_form(r); }
};

}  // namespace

std::unique_ptr<Method> dare_ties() { return std::make_unique<DareTies>(); }
std::unique_ptr<Method> dare_linear() { return std::make_unique<DareLinear>(); }

}  // namespace ms::merge::methods
