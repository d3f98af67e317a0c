// Running a merge: the one implementation behind both ways of calling a method.
//  - streaming (merge_streaming.hpp): tensor by tensor from mmapped checkpoints to output shards;
//  - resident (resident.hpp): from base and task vectors already in memory, as a sweep worker
//    holds them (possibly only its shard of the tensors).
// Both hand each tensor to merge_tensor(); statistics over the whole model go through a Reducer,
// which a sweep backs with a collective.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "mergesweep/core/hash.hpp"
#include "mergesweep/merge/request.hpp"

namespace at { class Tensor; }

namespace ms::merge {

// Sums across the ranks that hold the other shards of the model; the identity on one process.
class Reducer {
 public:
  virtual ~Reducer() = default;
  virtual void allreduce_sum(std::int64_t* data, std::size_t n) = 0;
  virtual void allreduce_sum(double* data, std::size_t n) = 0;
};
class LocalReducer final : public Reducer {
 public:
  void allreduce_sum(std::int64_t*, std::size_t) override {}
  void allreduce_sum(double*, std::size_t) override {}
};

// Where the merge reads θ₀ and τᵢ (float32) from. Implementations: mmapped files, resident memory.
class TaskVectorSource {
 public:
  virtual ~TaskVectorSource() = default;
  virtual const std::vector<std::string>& tensor_names() const = 0;  // the tensors this process holds
  virtual at::Tensor base(const std::string& name) = 0;
  virtual at::Tensor tau(std::size_t member, const std::string& name) = 0;
};

// Statistics over the whole model, computed before any tensor is merged (only for WholeModel runs).
struct GlobalStats {
  std::vector<float> trim_threshold;  // per member: keep |tau| >= threshold (global TIES trim)
  double majority_sign = 1.0;         // sign of the sum of elected signs over the model
};
GlobalStats compute_global_stats(const MergeRequest& r, TaskVectorSource& src, Reducer& reducer);

// Merges one tensor with the request's method (Method::merge). `base` and `tau` are float32 and
// share a shape; `element_offset` is the position of their first element in the full tensor
// (DARE masks depend on it, so a row-sharded tensor gets the same mask as a whole one). Returns
// the merged tensor, float32.
at::Tensor merge_tensor(const MergeRequest& r, const GlobalStats& g, const std::string& name, const at::Tensor& base,
                        const std::vector<at::Tensor>& tau, std::int64_t element_offset = 0,
                        const DareMaskFn* dare_mask = nullptr);

// The DARE keep-mask of member `index`: a pure function of (seed, configuration, checkpoint index,
// tensor name, element index). Exposed for tests and statistics.
at::Tensor dare_keep_mask(std::uint64_t seed, std::uint64_t config, int checkpoint_index, const std::string& tensor,
                          std::int64_t element_offset, std::int64_t numel, double density);
// The draw itself, one home for the mask and the fused kernels: the key of (seed, configuration,
// checkpoint index, tensor name), and whether element `element` is kept (u < density, u uniform
// in [0, 1) from 53 bits of a counter-based hash).
std::uint64_t dare_key(std::uint64_t seed, std::uint64_t config, int checkpoint_index, const std::string& tensor);
inline bool dare_keeps(std::uint64_t key, std::int64_t element, double density) {
  const std::uint64_t h = mix64(key + static_cast<std::uint64_t>(element) * 0xD1B54A32D192ED03ull);
  return static_cast<double>(h >> 11) * (1.0 / 9007199254740992.0) < density;
}
// The same draw compared in integers, for the loops: u·2⁵³ = h >> 11 is an integer below 2⁵³ and
// density·2⁵³ is exact, so u < density exactly when (h >> 11) < ⌈density·2⁵³⌉ (a NaN or
// non-positive density keeps nothing, a density of 1 or more everything). Saves the unsigned
// 64-bit to double conversion per element (tests/merge/test_registry.cpp pins the equivalence).
inline std::uint64_t dare_threshold(double density) {
  constexpr double kTwo53 = 9007199254740992.0;
  if (!(density > 0)) return 0;
  if (density >= 1) return std::uint64_t{1} << 53;
  const double scaled = density * kTwo53;
  const auto floor = static_cast<std::uint64_t>(scaled);
  return static_cast<double>(floor) == scaled ? floor : floor + 1;
}
inline bool dare_keeps_below(std::uint64_t key, std::int64_t element, std::uint64_t threshold) {
  return (mix64(key + static_cast<std::uint64_t>(element) * 0xD1B54A32D192ED03ull) >> 11) < threshold;
}

// Which tensors get the SVD treatment (TSV-M, Iso-C/CTS) and which Subspace Boosting applies to.
bool is_svd_merged(const std::string& name, std::int64_t dim);
bool is_boosted(const std::string& name);

// Merges that go through a tensor in row blocks take whole rows, about kRowBlockElements values
// per block (one row when a row is longer): the float32 working set is a few blocks, whatever
// the tensor's size. The resident and streaming merges and the memory plan share this partition.
constexpr std::int64_t kRowBlockElements = 1 << 20;
std::int64_t rows_per_block(std::int64_t row_elements);

// The request's Method::tensor_pass.
TensorPass tensor_pass(const MergeRequest& r, const std::string& name, std::int64_t dim);

}  // namespace ms::merge
