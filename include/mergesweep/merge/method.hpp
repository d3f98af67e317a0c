// A merge method is one object: src/merge/methods/<name>.cpp defines it and registers it (one line
// in src/merge/methods/all.cpp). The object owns
//  - its description and parameters (MethodInfo: mergekit's names, types, defaults);
//  - how it goes through a tensor (TensorPass), which sets the memory plan's terms;
//  - its cost for the planner (MethodInfo::plan_cost);
//  - its generic ATen kernel (merge), and optionally a fused raw-pointer CPU kernel (merge_fused_cpu);
//  - how mergekit writes the same merge (mergekit_form), or why no mergekit YAML can.
// The registry, the streaming, resident, row-block and device executors, the planner, the memory
// plan and the archive's rebuild ask the object; none of them knows a method by name.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "mergesweep/merge/registry.hpp"

namespace at { class Tensor; }

namespace ms::merge {

struct MergeRequest;
struct GlobalStats;
struct FusedCall;    // src/merge/kernels.hpp: the fused kernels' inputs
struct FusedResult;  // src/merge/kernels.hpp

// How a method goes through one tensor (`dim` dimensions), which sets the memory it needs.
enum class TensorPass {
  RowBlocks,          // a function of each element, given whole-model statistics: elementwise
                      // methods; the tensors TSV-M and Iso-C average (vectors, embeddings,
                      // lm_head); the tensors TA+SB does not boost
  TrimRulesThenRows,  // per-tensor TIES (and TIES+SB's unboosted tensors): each member's trim rule
                      // from its whole τ, one member at a time, then the election in row blocks
                      // (Method::merge_trimmed)
  StockRatioThenRows, // the members' Gram matrix summed over row blocks, then row blocks
                      // (Method::gram_spec, Method::merge_with_ratio)
  WholeTensor,        // SVD merges, boosted tensors, global-trim TIES: θ₀, the n τ, output, temporaries
};

// Test hook: replaces the DARE Bernoulli draw (returns the keep-mask, 1 = kept) so fixtures made
// by a reference implementation with its own RNG can be matched exactly.
using DareMaskFn = std::function<at::Tensor(std::size_t member, const std::string& tensor)>;

// One tensor's inputs: θ₀ and the members' τ (float32, one shape, on one device); the position
// of their first element in the whole tensor (random masks depend on it, so a row block draws
// what the whole tensor would).
struct TensorInputs {
  const MergeRequest& request;
  const GlobalStats& stats;
  const std::string& name;
  const at::Tensor& base;
  const std::vector<at::Tensor>& tau;
  std::int64_t element_offset = 0;
  const DareMaskFn* dare_mask = nullptr;
};

// The Gram-matrix pass (TensorPass::StockRatioThenRows): one ratio per output row or per tensor.
struct GramSpec {
  bool per_row = false;
  bool angle_mean = false;
};

// The same merge as mergekit 0.1.5 writes it: its method name and global parameters; or, in
// `refusal`, why no mergekit YAML rebuilds it (a parameter mergekit lacks, a method it lacks).
struct MergekitForm {
  std::string method;
  std::map<std::string, std::string> params;
  std::string note;                 // a comment for the YAML (DARE: another random draw)
  bool base_is_first_model = false;  // SLERP: mergekit lists the base among the models
  bool writes_base_model = false;    // a base-optional method given a base: write base_model:
  std::string refusal;
};

class Method : public MethodInfo {
 public:
  explicit Method(MethodInfo info) : MethodInfo(std::move(info)) {}
  virtual ~Method() = default;
  Method(const Method&) = delete;
  Method& operator=(const Method&) = delete;

  // Scope of one run: a WholeModel statistic switched off by a parameter reports WholeTensor.
  virtual Scope scope_for(const Params&) const { return scope; }
  // Default: RowBlocks when elementwise, else WholeTensor.
  virtual TensorPass tensor_pass(const Params& p, const std::string& tensor, std::int64_t dim) const;
  // Checks beyond the declared parameters' types and ranges (ms::Error naming `file`).
  virtual void validate(const MergeRequest&, const std::string& /*file*/) const {}

  // The merged tensor, float32, on the inputs' device.
  virtual at::Tensor merge(const TensorInputs& in) const = 0;
  // TrimRulesThenRows: the merge of members already trimmed by their per-tensor rules.
  virtual at::Tensor merge_trimmed(const MergeRequest& r, const std::string& tensor, const at::Tensor& base,
                                   const std::vector<at::Tensor>& trimmed) const;
  // StockRatioThenRows: the Gram matrix's options, and the merge of a block given its ratio.
  virtual GramSpec gram_spec(const Params&) const { return {}; }
  virtual at::Tensor merge_with_ratio(const MergeRequest& r, const at::Tensor& base, const std::vector<at::Tensor>& tau,
                                      const at::Tensor& ratio) const;

  // Whether a fused CPU kernel runs this merge in place (the memory plan counts nothing beside
  // the workspace then), and the kernel: false from merge_fused_cpu when it cannot take these
  // inputs, and the caller takes the generic path.
  virtual bool fused_on_cpu(const Params&) const { return false; }
  virtual bool merge_fused_cpu(const FusedCall&, FusedResult&) const { return false; }

  // Default: refused, "mergekit has no method <name>".
  virtual MergekitForm mergekit_form(const MergeRequest& r) const;
};

}  // namespace ms::merge
