// The defaults of a method object (method.hpp).
#include "mergesweep/merge/method.hpp"

#include <ATen/ATen.h>

#include "mergesweep/core/error.hpp"
#include "mergesweep/merge/request.hpp"

namespace ms::merge {

TensorPass Method::tensor_pass(const Params& p, const std::string&, std::int64_t) const {
  return scope_for(p) == Scope::Elementwise ? TensorPass::RowBlocks : TensorPass::WholeTensor;
}

at::Tensor Method::merge_trimmed(const MergeRequest&, const std::string& tensor, const at::Tensor&,
                                 const std::vector<at::Tensor>&) const {
  fail("", name, "internal: no trimmed merge for tensor '" + tensor + "' (tensor_pass said TrimRulesThenRows)");
}

at::Tensor Method::merge_with_ratio(const MergeRequest&, const at::Tensor&, const std::vector<at::Tensor>&,
                                    const at::Tensor&) const {
  fail("", name, "internal: no merge from a Gram ratio (tensor_pass said StockRatioThenRows)");
}

MergekitForm Method::mergekit_form(const MergeRequest&) const {
  MergekitForm f;
  f.refusal = "mergekit has no method " + name;
  return f;
}

}  // namespace ms::merge
