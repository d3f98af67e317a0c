// The one place that decides whether a base and its checkpoints can be merged, and what is done
// with each tensor. The spec check, `sweep --plan`, the resident loader, the streaming merge and
// `eval` call it; nothing else decides compatibility (docs/checkpoints.md).
//
// Per tensor of the base and of each checkpoint it checks presence, shape and dtype:
//  - a tensor of the base missing from a checkpoint, or a checkpoint tensor the base lacks, is
//    refused by name (known extra buffers such as rotary_emb.inv_freq are ignored; PEFT's
//    "base_model.model." prefix on every name is stripped when the folder is opened);
//  - a shape that differs is refused with both shapes; embeddings and heads of another vocabulary
//    are aligned by token string when a VocabChoice says how (vocabulary.hpp), else refused
//    naming both vocabularies;
//  - a tied head (no lm_head) where the merge has one contributes its input embedding, and a
//    checkpoint's own head where the base ties makes the merged model untied (transformers'
//    semantics, as mergekit);
//  - a float dtype that differs from the base's (bf16 fine-tune over an f32 base, per-tensor
//    mixtures) is accepted and marked Widened: every merge path forms τ = f32(θᵢ) − f32(θ₀) from
//    each tensor's own stored dtype, which is exact, so the merge is bitwise that of the same
//    values stored in float32;
//  - a dtype no merge kernel reads (integers, bool, float8) is refused.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mergesweep/io/dtype.hpp"
#include "mergesweep/io/vocabulary.hpp"

namespace ms::io {

class HfModel;
class FactoredAdapter;

// What one model of a family is, for the plan's family table.
struct FamilyMember {
  std::string path;
  std::string name;                    // the folder name: how reports show the checkpoint
  std::map<std::string, std::size_t> dtypes;  // dtype name -> number of tensors stored in it
  std::int64_t vocab_rows = -1;        // rows of the input embedding (-1: none found)
  bool tied_head = false;              // no lm_head of its own: the head is the input embedding
  std::string kind = "full";           // a full checkpoint, or "lora r=N" (an adapter folded onto the base)
  std::uint64_t merged_bytes = 0;      // bytes of the merged tensors as this model stores them
  std::uint64_t held_bytes = 0;        // bytes a resident sweep holds of it (an adapter: held factored)
  bool factored = false;               // an adapter a resident sweep holds factored (A, B, saved tensors)
  std::size_t widened = 0;             // merged tensors whose dtype differs from the base's
  std::size_t ignored = 0;             // known extra buffers, ignored
  bool peft_prefix_stripped = false;   // names stored as "base_model.model.<name>" (HfModel strips it)
  bool head_from_embedding = false;    // tied, where the merge has an lm_head: its embedding is used
  std::int64_t aligned_to_rows = 0;    // >0: embedding/head rows aligned by token to this many (vocabulary.hpp)
  std::string treatment() const;       // "as stored", "widened (N tensors)", ...
};

struct FamilyReport {
  FamilyMember base;
  std::vector<FamilyMember> checkpoints;
  // The tensors every merge writes: the base's, plus lm_head when a checkpoint has its own head
  // where the base ties it (the merged model is then untied).
  std::vector<std::string> tensor_names;
  std::vector<std::vector<std::int64_t>> shapes;  // of each merged tensor (rows: the merged vocabulary)
  bool unties_head = false;
  std::shared_ptr<const VocabPlan> vocab;  // null: every model has the base's vocabulary and rows
  // Per tensor (tensor_names' order): bytes the base and every checkpoint hold for it, each in
  // its own stored dtype (what a resident sweep keeps; a factored adapter: its A, B and saved
  // tensors for it, nothing for a tensor it leaves).
  std::vector<std::uint64_t> held_bytes;
  // Per checkpoint: the adapter a resident sweep holds factored instead of the folded folder's
  // tensors (lora_adapter.hpp); null for a checkpoint held as stored.
  std::vector<std::shared_ptr<const FactoredAdapter>> factored;
  // Per tensor: how many factored adapters fold it at merge time (each fold fills one float32
  // scratch tensor of its size while a merge reads it).
  std::vector<std::size_t> folds;
};

// Checks a family; throws ms::Error naming the file, the tensor, what was expected and what was
// found. `fields` (optional, one per checkpoint) name where each checkpoint came from, e.g.
// "checkpoints[3]" or "models[1].model", so a refusal can point at the spec.
// `vocab`: how to merge vocabularies that differ (default: refuse, naming both).
FamilyReport check_family(const HfModel& base, const std::vector<const HfModel*>& checkpoints,
                          const std::vector<std::string>& fields = {}, const VocabChoice& vocab = {});
// Opens the folders first (a path that does not exist is refused as such).
FamilyReport check_family(const std::string& base, const std::vector<std::string>& checkpoints,
                          const std::vector<std::string>& fields = {}, const VocabChoice& vocab = {});
// One model alone (eval, inspect): every tensor in a float dtype the kernels read.
FamilyMember check_model(const HfModel& model);

// An input embedding or the LM head: rows indexed by token id.
bool is_vocab_tensor(const std::string& tensor_name);
// The tensor of `model` that it contributes to merged tensor `name`: a tied head (no lm_head) is
// its input embedding (transformers' semantics; mergekit reads it so too); "" when it has none.
std::string source_of(const HfModel& model, const std::string& name);
// A buffer some exports carry that no merge or forward pass reads (transformers recomputes it).
bool is_ignored_buffer(const std::string& tensor_name);
// Whether the kernels read this dtype (bf16, f16, f32, f64).
bool dtype_is_mergeable(DType dtype);

// The table `sweep --plan` prints: one row per model.
std::string describe_family(const FamilyReport& report);

}  // namespace ms::io
