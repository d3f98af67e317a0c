// The memory a sweep needs on each rank of a worker group, from the model's real tensor sizes,
// the group size g and the spec (docs/sizing.md states this model; analysis/sizing.py computes
// the same for the studies' models). Per rank r:
//   resident    Σ B_r(k)               base and K checkpoints, each in its own file dtype, the tensors r owns
//                                      (a LoRA adapter held factored: its A, B and saved tensors)
//   workspace   4 · W(E_r)             float32 values one merge holds for r's largest tensor (E_r
//                                      values), the worst of the spec's methods: E for fused TA,
//                                      2E for fused TIES (CPU), E + (n+2)·min(E, 2²⁰) for
//                                      elementwise methods (row blocks), (n+3)·E for the others;
//                                      plus factored adapters' folds: up to min(n, a) tensors of
//                                      the largest folded size F, + 2F while one is formed
//   merged      P · e                  the gathered merged model in the eval dtype (e bytes per
//                                      value); r's own part is written in place into it
//   activations T·(V + 4H + 2I)·4 + T·S·A·4   one batch of T = eval.batch_tokens: logits, hidden
//                                      and MLP buffers, one layer's attention scores (S: sequence)
//   runtime     a fixed allowance: 1.5 GB on a GPU (CUDA context, allocator), 0.5 GB on a CPU
// It must fit the limit: schedule.memory_per_rank when given, else 90% of the device's memory
// (a GPU's total; on a CPU node the cgroup or physical limit shared by the node's ranks).
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <string>
#include <vector>

#include "mergesweep/sweep/spec.hpp"

namespace ms::sweep {

struct RankMemory {
  std::uint64_t resident = 0, workspace = 0, merged = 0, activations = 0, runtime = 0;
  std::uint64_t total() const { return resident + workspace + merged + activations + runtime; }
};

// The model's shape, as the plan needs it (read from the base's header and config.json).
struct ModelShape {
  std::vector<std::string> names;
  std::vector<std::uint64_t> bytes;  // per tensor, the base's file dtype (shards are assigned by it)
  // Per tensor, the bytes the base and every checkpoint hold, each in its own stored dtype (a
  // bf16 fine-tune over an f32 base holds half the base's bytes). Empty: K + 1 times `bytes`.
  std::vector<std::uint64_t> held_bytes;
  // Per tensor, how many checkpoints are LoRA adapters held factored that fold it at merge time
  // (io::FamilyReport::folds; each needs float32 scratch then). Empty: none.
  std::vector<std::size_t> folds;
  std::vector<std::int64_t> numel;
  std::vector<std::vector<std::int64_t>> shapes;  // per tensor (absent: taken as 1-D)
  std::int64_t hidden = 0, intermediate = 0, vocab = 0, heads = 0, max_position = 0;
};
// From the base's header and config.json and the family's real bytes (io::check_family).
ModelShape read_model_shape(const SweepSpec& spec);

struct MemoryPlan {
  int group_size = 1;
  bool cuda = false;
  std::vector<RankMemory> ranks;  // one per rank of a group
  std::uint64_t limit = 0;        // bytes one rank may use
  std::string limit_source;       // where the limit came from
  int smallest_fitting_group = 0; // 0: no group size fits (the parts that do not shrink with g)
  std::uint64_t peak() const;     // the largest rank's total
  bool fits() const { return peak() <= limit; }
};

// `ranks_per_node` divides a CPU node's memory (ignored on a GPU, one rank per device, and when
// schedule.memory_per_rank is set).
MemoryPlan plan_memory(const SweepSpec& spec, const ModelShape& model, int group_size, c10::Device device,
                       int ranks_per_node);
// Per-rank lines for `sweep --plan`.
std::string describe_memory(const MemoryPlan& plan);
// Throws ms::Error naming the spec, the numbers and the smallest g that fits, when it does not fit.
void require_fit(const MemoryPlan& plan, const SweepSpec& spec);

}  // namespace ms::sweep
