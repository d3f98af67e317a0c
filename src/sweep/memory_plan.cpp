#include "mergesweep/sweep/memory_plan.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "mergesweep/core/error.hpp"
#include "mergesweep/core/units.hpp"
#include "mergesweep/io/family_check.hpp"
#include "mergesweep/io/hf_config.hpp"
#include "mergesweep/io/hf_model.hpp"
#include "mergesweep/merge/merge.hpp"
#include "mergesweep/merge/method.hpp"
#include "mergesweep/model/device.hpp"
#include "mergesweep/sweep/worker.hpp"

namespace ms::sweep {
namespace {

constexpr std::uint64_t kRuntimeGpu = 1'500'000'000ull;
constexpr std::uint64_t kRuntimeCpu = 500'000'000ull;
constexpr std::int64_t kDefaultSequence = 2048;  // scored items are shorter than this

// The float32 workspace of a rank: W, one buffer the size of its largest tensor (every baseline,
// every tensor of the CPU's fused kernels and of a row-block pass goes through it; it is kept
// between tensors and configs), plus the most any one tensor holds beside it (merge::tensor_pass;
// n the method's largest subset, Bk the values of one row block, merge::rows_per_block):
//  - a method's fused CPU kernel (task arithmetic, per-tensor TIES): nothing (TIES forms a member's τ for
//    its trim rule in W before writing it);
//  - tensors merged whole (SVD merges, boosted tensors, SLERP; any tensor of one block or less):
//    θ₀, the n τ, the output and a temporary, (n + 3)·E;
//  - row blocks: per block θ₀, the n τ, a stacked or weighted copy of them and the result, (2n + 4)·Bk;
//  - trim rules, then row blocks: while a rule is made on a GPU, |τ|, its masks and the
//    k = density·E largest values with int64 indices, E + E/4 + 3k (τ is in W; on the CPU the
//    radix select holds nothing more); per block the above plus the trimmed copies, the
//    consensus temporaries and an int64 index, (3n + 8)·Bk;
//  - the Gram-matrix pass (Model Stock): per block the n τ, their stacked copy and θ₀, (2n + 2)·Bk, and with
//    filter_wise a float64 Gram matrix per output row (2·rows·n² values);
//  - baselines (θ₀, and θ₀ + τ, formed in W): on the CPU θ₀ widened once for the sum, E.
std::uint64_t values_beside_workspace(const MethodPoint& m, int n, const std::string& name,
                                      const std::vector<std::int64_t>& shape, std::uint64_t E, bool cuda) {
  const auto nn = static_cast<std::uint64_t>(n);
  const merge::TensorPass pass = m.method->tensor_pass(m.params, name, static_cast<std::int64_t>(shape.size()));
  if (!cuda && m.method->fused_on_cpu(m.params)) return 0;
  const auto kRow = static_cast<std::uint64_t>(merge::kRowBlockElements);
  if (pass == merge::TensorPass::WholeTensor || shape.empty() || E <= kRow) return (nn + 3) * E;
  const auto row = E / static_cast<std::uint64_t>(std::max<std::int64_t>(1, shape[0]));
  const std::uint64_t Bk = std::min(E, static_cast<std::uint64_t>(merge::rows_per_block(static_cast<std::int64_t>(row))) * row);
  switch (pass) {
    case merge::TensorPass::RowBlocks: return (2 * nn + 4) * Bk;
    case merge::TensorPass::TrimRulesThenRows: {
      const auto k = static_cast<std::uint64_t>(std::ceil(std::min(1.0, m.density) * static_cast<double>(E)));
      const std::uint64_t rule = cuda ? E + E / 4 + 3 * k : 0;
      return std::max(rule, (3 * nn + 8) * Bk);
    }
    default: {  // StockRatioThenRows
      const bool per_row = m.method->gram_spec(m.params).per_row && shape.size() >= 2;
      const std::uint64_t gram = per_row ? 2 * static_cast<std::uint64_t>(shape[0]) * nn * nn : 0;
      return (2 * nn + 2) * Bk + gram;
    }
  }
}

// The largest subset any of the spec's methods merges (1 for the baselines alone).
int largest_subset(const SweepSpec& spec) {
  const int K = static_cast<int>(spec.checkpoints.size());
  int n = 1;
  for (const auto& m : spec.methods)
    for (int s : (m.sizes.empty() ? spec.sizes : m.sizes)) n = std::max(n, std::min(s, K));
  return n;
}

// The float32 values factored adapters' folds hold (merge::ResidentModels, io::fold_lora_into):
// the j-th factored member of a merge folds into slot j, kept between tensors and configs and the
// size of the largest tensor folded through it, so slot j is the largest tensor of the rank that
// more than j adapters fold; at most n slots. While a fold runs, B·A and its scaled copy (two of
// that tensor's size) are formed beside it.
std::uint64_t fold_scratch_values(const SweepSpec& spec, const ModelShape& shape, const std::vector<std::size_t>& tensors) {
  std::uint64_t largest = 0, slots = 0;
  const auto n = static_cast<std::size_t>(largest_subset(spec));
  for (std::size_t j = 0; j < n; ++j) {
    std::uint64_t slot = 0;
    for (std::size_t t : tensors) {
      if (t >= shape.folds.size() || shape.folds[t] <= j) continue;
      slot = std::max(slot, static_cast<std::uint64_t>(shape.numel[t]));
    }
    largest = std::max(largest, slot);
    slots += slot;
  }
  return slots + 2 * largest;
}

// The workspace over the spec's methods and the rank's tensors: W + the most held beside it, and
// the factored adapters' fold scratch.
std::uint64_t workspace_bytes(const SweepSpec& spec, const ModelShape& shape, const std::vector<std::size_t>& tensors,
                              bool cuda) {
  std::uint64_t W = 0, beside = 0;
  const int K = static_cast<int>(spec.checkpoints.size());
  for (std::size_t t : tensors) {
    const auto E = static_cast<std::uint64_t>(shape.numel[t]);
    W = std::max(W, E);  // the baselines go through the workspace too
    if (!cuda) beside = std::max(beside, E);
    // A tensor whose shape is unknown is taken as merged whole (the larger need).
    const std::vector<std::int64_t> dims = t < shape.shapes.size() ? shape.shapes[t] : std::vector<std::int64_t>{};
    for (const auto& m : spec.methods) {
      int n = 1;
      for (int s : (m.sizes.empty() ? spec.sizes : m.sizes)) n = std::max(n, std::min(s, K));
      beside = std::max(beside, values_beside_workspace(m, n, shape.names[t], dims, E, cuda));
    }
  }
  return 4 * (W + beside + fold_scratch_values(spec, shape, tensors));
}

std::uint64_t activation_bytes(const SweepSpec& spec, const ModelShape& m) {
  if (spec.eval.tasks.empty() && spec.eval.probes.empty()) return 0;  // merges and statistics only
  const auto T = static_cast<std::uint64_t>(spec.eval.batch_tokens);
  std::int64_t seq = spec.eval.max_length > 0 ? spec.eval.max_length : std::min(kDefaultSequence, m.max_position);
  const auto S = static_cast<std::uint64_t>(std::max<std::int64_t>(1, std::min<std::int64_t>(seq, spec.eval.batch_tokens)));
  return T * static_cast<std::uint64_t>(m.vocab + 4 * m.hidden + 2 * m.intermediate) * 4 +
         T * S * static_cast<std::uint64_t>(m.heads) * 4;
}

// Per-rank parts for a group of g (the limit is left to the caller).
std::vector<RankMemory> ranks_of(const SweepSpec& spec, const ModelShape& m, int g, bool cuda) {
  const std::vector<int> owner = assign_shards(m.names, m.bytes, g);
  const std::uint64_t e = spec.eval.dtype == "bfloat16" ? 2 : 4;
  const std::uint64_t K = spec.checkpoints.size();
  std::uint64_t P = 0;
  for (auto n : m.numel) P += static_cast<std::uint64_t>(n);
  const std::uint64_t act = activation_bytes(spec, m);
  std::vector<RankMemory> ranks(static_cast<std::size_t>(g));
  std::vector<std::uint64_t> own_bytes(ranks.size(), 0);
  std::vector<std::vector<std::size_t>> own(ranks.size());
  for (std::size_t t = 0; t < m.names.size(); ++t) {
    const auto r = static_cast<std::size_t>(owner[t]);
    // The base and each checkpoint in its own dtype; without the family's bytes, K + 1 of the base's.
    own_bytes[r] += t < m.held_bytes.size() ? m.held_bytes[t] : (K + 1) * m.bytes[t];
    own[r].push_back(t);
  }
  for (std::size_t r = 0; r < ranks.size(); ++r) {
    ranks[r].resident = own_bytes[r];
    ranks[r].workspace = workspace_bytes(spec, m, own[r], cuda);
    ranks[r].merged = P * e;  // the rank's own part is merged in place into the gathered buffer
    ranks[r].activations = act;
    ranks[r].runtime = cuda ? kRuntimeGpu : kRuntimeCpu;
  }
  return ranks;
}

std::uint64_t peak_of(const std::vector<RankMemory>& ranks) {
  std::uint64_t p = 0;
  for (const auto& r : ranks) p = std::max(p, r.total());
  return p;
}

// A shape-only spec's model: the architecture table's tensors at the config's sizes, every one
// stored in config.json's torch_dtype by the base and each checkpoint. The required tensors only
// (biases and q/k norms of some architectures, a few MB, are left out).
ModelShape shape_from_config(const SweepSpec& spec) {
  const io::ModelConfig c = io::read_model_config(spec.base + "/config.json");
  const std::string& t = c.torch_dtype;
  const std::uint64_t bytes_per = t == "float32" ? 4 : (t == "bfloat16" || t == "float16") ? 2 : 0;
  if (bytes_per == 0)
    fail(spec.base + "/config.json", "torch_dtype",
         (t.empty() ? std::string("is not given") : "'" + t + "' is not bfloat16, float16 or float32") +
             ": a shape-only plan takes the checkpoints' stored dtype from it");
  ModelShape m;
  const std::uint64_t copies = spec.checkpoints.size() + 1;
  // In name order, as io::check_family lists a family's tensors (the shards are dealt in it).
  std::vector<model::TensorSpec> tensors = model::llama_tensors(io::arch_dims(c));
  std::sort(tensors.begin(), tensors.end(), [](const auto& x, const auto& y) { return x.name < y.name; });
  for (const auto& ts : tensors) {
    std::int64_t numel = 1;
    for (auto d : ts.shape) numel *= d;
    m.names.push_back(ts.name);
    m.numel.push_back(numel);
    m.shapes.push_back(ts.shape);
    m.bytes.push_back(static_cast<std::uint64_t>(numel) * bytes_per);
    m.held_bytes.push_back(copies * m.bytes.back());
  }
  m.hidden = c.hidden_size, m.intermediate = c.intermediate_size, m.vocab = c.vocab_size;
  m.heads = c.num_attention_heads, m.max_position = c.max_position_embeddings;
  return m;
}

}  // namespace

ModelShape read_model_shape(const SweepSpec& spec) {
  if (spec.shape_only) return shape_from_config(spec);
  const std::string& base_path = spec.base;
  const io::HfModel base = io::HfModel::open(base_path);
  if (!base.config()) fail(base_path, "config.json", "is missing (the memory plan needs the model's shape)");
  ModelShape m;
  // Each checkpoint's real bytes per tensor, in the dtype it is stored and held in.
  io::FamilyReport family = io::check_family(base_path, spec.checkpoints, {}, spec.vocab_choice());
  m.names = std::move(family.tensor_names);
  m.held_bytes = std::move(family.held_bytes);
  m.folds = std::move(family.folds);
  for (const auto& n : m.names) {
    m.bytes.push_back(base.require(n).nbytes());
    m.numel.push_back(base.require(n).numel());
    m.shapes.push_back(base.require(n).shape);
  }
  const io::ModelConfig& c = *base.config();
  m.hidden = c.hidden_size, m.intermediate = c.intermediate_size, m.vocab = c.vocab_size;
  m.heads = c.num_attention_heads, m.max_position = c.max_position_embeddings;
  return m;
}

std::uint64_t MemoryPlan::peak() const { return peak_of(ranks); }

MemoryPlan plan_memory(const SweepSpec& spec, const ModelShape& model, int group_size, c10::Device device,
                       int ranks_per_node) {
  MemoryPlan p;
  p.group_size = group_size;
  p.cuda = device.is_cuda();
  if (spec.schedule.memory_per_rank > 0) {
    p.limit = spec.schedule.memory_per_rank;
    p.limit_source = "schedule.memory_per_rank";
  } else {
    std::string source;
    const std::uint64_t dev = model::device_memory_bytes(device, &source);
    const int sharing = p.cuda ? 1 : std::max(1, ranks_per_node);
    p.limit = static_cast<std::uint64_t>(0.9 * static_cast<double>(dev) / static_cast<double>(sharing));
    p.limit_source = "90% of " + source + " (" + format_bytes(dev) + ")" +
                     (sharing > 1 ? " shared by " + std::to_string(sharing) + " ranks" : "");
  }
  p.ranks = ranks_of(spec, model, group_size, p.cuda);
  const int most = static_cast<int>(model.names.size());
  for (int g = 1; g <= most && p.smallest_fitting_group == 0; ++g) {
    if (peak_of(ranks_of(spec, model, g, p.cuda)) <= p.limit) p.smallest_fitting_group = g;
  }
  return p;
}

std::string describe_memory(const MemoryPlan& p) {
  std::string s = "memory per rank (g=" + std::to_string(p.group_size) + ", " + (p.cuda ? "cuda" : "cpu") +
                  "; limit " + format_bytes(p.limit) + ": " + p.limit_source + ")\n";
  char line[256];
  for (std::size_t r = 0; r < p.ranks.size(); ++r) {
    const RankMemory& m = p.ranks[r];
    std::snprintf(line, sizeof line, "  rank %zu: resident %s + workspace %s + merged model %s + activations %s + runtime %s = %s\n",
                  r, format_bytes(m.resident).c_str(), format_bytes(m.workspace).c_str(), format_bytes(m.merged).c_str(),
                  format_bytes(m.activations).c_str(), format_bytes(m.runtime).c_str(), format_bytes(m.total()).c_str());
    s += line;
  }
  s += p.fits() ? "  fits" : "  does NOT fit";
  if (p.smallest_fitting_group > 0) s += " (smallest group size that fits: " + std::to_string(p.smallest_fitting_group) + ")";
  else s += " (no group size fits: the merged model, activations and runtime alone exceed the limit)";
  return s + "\n";
}

void require_fit(const MemoryPlan& p, const SweepSpec& spec) {
  if (p.fits()) return;
  std::string what = "a rank of a group of " + std::to_string(p.group_size) + " needs " + format_bytes(p.peak()) +
                     " but may use " + format_bytes(p.limit) + " (" + p.limit_source + "); ";
  what += p.smallest_fitting_group > 0
              ? "the smallest group size that fits is " + std::to_string(p.smallest_fitting_group)
              : "no group size fits (lower eval.batch_tokens, or more memory per rank)";
  fail(spec.path, "schedule.group_size", what + "; `sweep --plan` shows the parts");
}

}  // namespace ms::sweep
