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

// Test hook: replaces the DARE Bernoulli draw (returns the keep-mask, 1 = kept) so fixtures made
// by a reference implementation with its own RNG can be matched exactly.
using DareMaskFn = std::function<at::Tensor(std::size_t member, const std::string& tensor)>;

// Merges one tensor. `base` and `tau` are float32 and share a shape; `element_offset` is the
// position of their first element in the full tensor (DARE masks depend on it, so a row-sharded
// tensor gets the same mask as a whole one). Returns the merged tensor, float32.
at::Tensor merge_tensor(const MergeRequest& r, const GlobalStats& g, const std::string& name, const at::Tensor& base,
                        const std::vector<at::Tensor>& tau, std::int64_t element_offset = 0,
                        const DareMaskFn* dare_mask = nullptr);

// The DARE keep-mask of member `index`: a pure function of (seed, configuration, checkpoint index,
// tensor name, element index). Exposed for tests and statistics.
at::Tensor dare_keep_mask(std::uint64_t seed, std::uint64_t config, int checkpoint_index, const std::string& tensor,
                          std::int64_t element_offset, std::int64_t numel, double density);

// Which tensors get the SVD treatment (TSV-M, Iso-C/CTS) and which Subspace Boosting applies to.
bool is_svd_merged(const std::string& name, std::int64_t dim);
bool is_boosted(const std::string& name);

// Merges that go through a tensor in row blocks take whole rows, about kRowBlockElements values
// per block (one row when a row is longer): the float32 working set is a few blocks, whatever
// the tensor's size. The resident and streaming merges and the memory plan share this partition.
constexpr std::int64_t kRowBlockElements = 1 << 20;
std::int64_t rows_per_block(std::int64_t row_elements);

// How a method goes through one tensor (`dim` dimensions), which sets the memory it needs.
enum class TensorPass {
  RowBlocks,         // a function of each element, given whole-model statistics: elementwise
                     // methods; the tensors TSV-M and Iso-C average (vectors, embeddings,
                     // lm_head); the tensors TA+SB does not boost
  TrimRulesThenRows, // per-tensor TIES (and TIES+SB's unboosted tensors): each member's trim rule
                     // from its whole τ, one member at a time, then the election in row blocks
  StockRatioThenRows,// Model Stock: the members' Gram matrix summed over row blocks, then row blocks
  WholeTensor,       // SVD merges, boosted tensors, global-trim TIES: θ₀, the n τ, output, temporaries
};
TensorPass tensor_pass(const MergeRequest& r, const std::string& name, std::int64_t dim);
// The same from a method and its parameters (the memory plan has no request).
TensorPass tensor_pass(const MethodInfo& m, const Params& p, const std::string& name, std::int64_t dim);

// Methods with fused raw-pointer kernels for CPU tensors (task arithmetic, per-tensor TIES): the
// resident merge runs them in place in its workspace, so the memory plan counts nothing beside it.
bool fused_on_cpu(const MethodInfo& m, const Params& p);

// TIES on members already trimmed (each member's per-tensor trim applied): the sign election,
// the disjoint mean and the scaling that merge_tensor applies after its own trim.
at::Tensor merge_trimmed_ties(const MergeRequest& r, const std::string& name, const at::Tensor& base,
                              const std::vector<at::Tensor>& trimmed);

}  // namespace ms::merge
