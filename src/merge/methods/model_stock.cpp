// Model Stock: interpolate the base and the models' average by the task vectors' mean cosine
// (https://arxiv.org/abs/2403.19522). Goes through a tensor twice in row blocks: the members'
// Gram matrix, then the interpolation (on the CPU streamed from the stored inputs: stock_stream).
#include "parts.hpp"

namespace ms::merge::methods {
namespace {

class ModelStock final : public Method {
 public:
  ModelStock() : Method(info()) {}
  static MethodInfo info() {
    MethodInfo i;
    i.name = "model_stock";
    i.summary = "interpolate base and average by the task vectors' mean cosine";
    i.reference_url = "https://arxiv.org/abs/2403.19522";
    i.min_models = 2;
    i.scope = Scope::WholeTensor;
    i.plan_cost = 2;
    i.params = {parts::flag("filter_wise", "false", "one ratio per output row instead of per tensor"),
                parts::choice("cosine_mean", "cosine", {"cosine", "angle"},
                              "average the pairwise cosines (mergekit) or the pairwise angles (fusion_bench)")};
    return i;
  }
  TensorPass tensor_pass(const Params&, const std::string&, std::int64_t) const override {
    return TensorPass::StockRatioThenRows;
  }
  GramSpec gram_spec(const Params& p) const override {
    return {p.flag("filter_wise"), p.choice("cosine_mean") == "angle"};
  }
  at::Tensor merge(const TensorInputs& in) const override {
    const GramSpec g = gram_spec(in.request.params);
    return kernels::model_stock(in.base, in.tau, g.per_row, g.angle_mean);
  }
  at::Tensor merge_with_ratio(const MergeRequest& r, const at::Tensor& base, const std::vector<at::Tensor>& tau,
                              const at::Tensor& ratio) const override {
    return kernels::model_stock_apply(base, tau, ratio, r.params.flag("filter_wise"));
  }
  bool fused_on_cpu(const Params&) const override { return true; }
  bool merge_fused_cpu(const FusedCall& c, FusedResult& res) const override {
    const GramSpec g = gram_spec(c.request.params);
    const std::int64_t n = c.base.numel();
    const bool per_row = g.per_row && c.base.dim() >= 2 && c.base.size(0) > 0;
    return parts::report(kernels::stock_stream(c.out.data_ptr(), c.out.scalar_type(), parts::base_span(c),
                                               parts::member_spans(c), n, per_row ? n / c.base.size(0) : std::max<std::int64_t>(n, 1),
                                               g.angle_mean, c.tau_given, c.with_stats),
                         res);
  }
  MergekitForm mergekit_form(const MergeRequest& r) const override {
    MergekitForm f;
    if (r.params.choice("cosine_mean") != "cosine") f.refusal = "cosine_mean=" + r.params.choice("cosine_mean");
    f.method = name;
    f.params["filter_wise"] = r.params.flag("filter_wise") ? "true" : "false";
    return f;
  }
};

}  // namespace

std::unique_ptr<Method> model_stock() { return std::make_unique<ModelStock>(); }

}  // namespace ms::merge::methods
