// merge_tensor(): a request's tensor to its method object, shared by the streaming and the
// resident paths; DARE masks; which tensors the SVD methods and Subspace Boosting treat.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/core/hash.hpp"
#include "mergesweep/model/arch_table.hpp"

namespace ms::merge {

bool is_svd_merged(const std::string& name, std::int64_t dim) {
  const model::TensorKind k = model::tensor_kind(name);
  return dim == 2 && k != model::TensorKind::Embed && k != model::TensorKind::LmHead;
}

bool is_boosted(const std::string& name) { return model::is_layer_projection(name); }

std::int64_t rows_per_block(std::int64_t row_elements) {
  return std::max<std::int64_t>(1, kRowBlockElements / std::max<std::int64_t>(1, row_elements));
}

TensorPass tensor_pass(const MergeRequest& r, const std::string& name, std::int64_t dim) {
  return r.method->tensor_pass(r.params, name, dim);
}

std::uint64_t dare_key(std::uint64_t seed, std::uint64_t config, int checkpoint_index, const std::string& tensor) {
  return mix64(seed ^ mix64(config ^ mix64(static_cast<std::uint64_t>(checkpoint_index) ^ stable_hash(tensor))));
}

at::Tensor dare_keep_mask(std::uint64_t seed, std::uint64_t config, int checkpoint_index, const std::string& tensor,
                          std::int64_t element_offset, std::int64_t numel, double density) {
  const std::uint64_t key = dare_key(seed, config, checkpoint_index, tensor);
  at::Tensor mask = at::empty({numel}, at::kFloat);
  float* out = mask.data_ptr<float>();
  const std::uint64_t threshold = dare_threshold(density);
  at::parallel_for(0, numel, 1 << 16, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i) out[i] = dare_keeps_below(key, element_offset + i, threshold) ? 1.0f : 0.0f;
  });
  return mask;
}

at::Tensor merge_tensor(const MergeRequest& r, const GlobalStats& g, const std::string& name, const at::Tensor& base,
                        const std::vector<at::Tensor>& tau, std::int64_t element_offset, const DareMaskFn* dare_mask) {
  return r.method->merge(TensorInputs{r, g, name, base, tau, element_offset, dare_mask});
}

}  // namespace ms::merge
