// Internal: what the SVD methods (TSV-M, Iso-C, Iso-CTS) share: 2-D projections get the method's
// delta, vectors, norms, embeddings and lm_head the plain mean of the task vectors.
#pragma once

#include "parts.hpp"

namespace ms::merge::methods {

class SvdMethod : public Method {
 public:
  using Method::Method;
  TensorPass tensor_pass(const Params&, const std::string& tensor, std::int64_t dim) const override {
    return is_svd_merged(tensor, dim) ? TensorPass::WholeTensor : TensorPass::RowBlocks;
  }
  at::Tensor merge(const TensorInputs& in) const override {
    const double alpha = in.request.params.number("alpha");
    if (!is_svd_merged(in.name, in.base.dim())) return in.base + kernels::mean_by_division(at::stack(in.tau), 0) * alpha;
    return in.base + delta(in.tau, in.request.params) * alpha;
  }

 protected:
  // The merged delta of a 2-D projection from the members' τ.
  virtual at::Tensor delta(const std::vector<at::Tensor>& tau, const Params& p) const = 0;
  static MethodInfo svd_info(const char* method_name, const char* summary, const char* url) {
    MethodInfo i;
    i.name = method_name;
    i.summary = summary;
    i.reference_url = url;
    i.scope = Scope::WholeTensor;
    i.plan_cost = 8;
    i.params = {parts::alpha()};
    return i;
  }
};

}  // namespace ms::merge::methods
