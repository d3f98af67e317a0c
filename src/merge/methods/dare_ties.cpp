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
  MergekitForm mergekit_form(const MergeRequest& r) const override { return dare_form(r); }

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
  MergekitForm mergekit_form(const MergeRequest& r) const override { return DareTies::dare_form(r); }
};

}  // namespace

std::unique_ptr<Method> dare_ties() { return std::make_unique<DareTies>(); }
std::unique_ptr<Method> dare_linear() { return std::make_unique<DareLinear>(); }

}  // namespace ms::merge::methods
