// TIES: trim each τ to its top-k magnitudes, elect a sign per entry, take the disjoint mean
// (https://arxiv.org/abs/2306.01708). Per-tensor trim (mergekit) runs as trim rules then row
// blocks, or fused on the CPU; global trim (the paper) needs whole-model statistics.
#include "parts.hpp"

namespace ms::merge::methods {
namespace {

class Ties final : public Method {
 public:
  Ties() : Method(info()) {}
  static MethodInfo info() {
    MethodInfo i;
    i.name = "ties";
    i.summary = "trim (top-k by magnitude), elect sign, disjoint merge";
    i.reference_url = "https://arxiv.org/abs/2306.01708";
    i.scope = Scope::WholeTensor;
    i.uses_weight = true;
    i.uses_density = true;
    i.plan_cost = 2;
    i.accepts_int8_mask = true;
    i.params = {parts::lambda(), parts::normalize("true", "weighted disjoint mean instead of a sum"), parts::trim()};
    return i;
  }
  Scope scope_for(const Params& p) const override {
    return p.choice("trim") == "global" ? Scope::WholeModel : Scope::WholeTensor;
  }
  TensorPass tensor_pass(const Params& p, const std::string&, std::int64_t) const override {
    return p.choice("trim") == "per_tensor" ? TensorPass::TrimRulesThenRows : TensorPass::WholeTensor;
  }
  at::Tensor merge(const TensorInputs& in) const override {
    return in.base + parts::scaled_delta(in.request, in.name, parts::ties_parts(in), false);
  }
  at::Tensor merge_trimmed(const MergeRequest& r, const std::string& tensor, const at::Tensor& base,
                           const std::vector<at::Tensor>& trimmed) const override {
    const auto consensus = kernels::ties_consensus(trimmed, parts::weights_of(r), r.params.flag("normalize"));
    return base + parts::scaled_delta(r, tensor, consensus, false);
  }
  bool fused_on_cpu(const Params& p) const override { return p.choice("trim") == "per_tensor"; }
  // The trim rules: the caller's cache (the resident sweep), or made here one member at a time
  // (the streaming merge: one τ formed at once). ties_into takes float32 τ and output.
  bool merge_fused_cpu(const FusedCall& c, FusedResult& res) const override {
    if (!fused_on_cpu(c.request.params) || (c.tau_given && (c.with_stats || c.out.scalar_type() != at::kFloat)))
      return false;
    const Params& p = c.request.params;
    std::vector<kernels::TrimRule> made;
    if (!c.trim_rule) {
      if (c.tau_given) return false;
      for (std::size_t i = 0; i < c.held.size(); ++i)
        made.push_back(kernels::make_trim_rule(kernels::task_vector(*c.held[i], c.base), c.request.members[i].density));
    }
    std::vector<const kernels::TrimRule*> rules;
    for (std::size_t i = 0; i < c.held.size(); ++i) rules.push_back(c.trim_rule ? &c.trim_rule(i) : &made[i]);
    const std::vector<double> w = parts::weights_of(c.request);
    if (c.tau_given) {
      kernels::ties_into(c.out, c.base, c.held, rules, w, p.flag("normalize"), p.number("lambda"));
      return true;
    }
    return parts::report(kernels::ties_into_stored(c.out, c.base, c.held, rules, w, p.flag("normalize"),
                                                   p.number("lambda"), nullptr, c.with_stats),
                         res);
  }
  MergekitForm mergekit_form(const MergeRequest& r) const override {
    MergekitForm f = parts::task_arithmetic_form(r);
    if (r.params.choice("trim") != "per_tensor") f.refusal = "trim=" + r.params.choice("trim") + " (mergekit trims per tensor only)";
    return f;
  }
};

}  // namespace

std::unique_ptr<Method> ties() { return std::make_unique<Ties>(); }

}  // namespace ms::merge::methods
