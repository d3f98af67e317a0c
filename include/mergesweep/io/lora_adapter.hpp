// PEFT LoRA adapters as checkpoints. Wherever a checkpoint is accepted (a sweep's `checkpoints:`,
// a merge YAML's `model:`, mergekit's `model+lora` syntax, `eval`), an adapter folder
// (adapter_config.json + adapter_model.safetensors, as peft's save_pretrained writes it) is
// accepted too, and folded into its base with PEFT's semantics (merge_and_unload):
//   W' = W + s · B·A     (transposed when fan_in_fan_out; (B·A)ᵀ for an embedding's LoRA)
//   s  = lora_alpha / r, or lora_alpha / √r with use_rslora; r and alpha per module from
//        rank_pattern / alpha_pattern; modules_to_save and saved base layers replace the base's
//        tensor whole.
// The folded checkpoint is a real model folder, written once into a cache folder keyed by the
// adapter's bytes and the base's files, so every path (check_family, residents, streaming, eval,
// the archive's hashes) reads it as any checkpoint. Folded tensors are float32 (PEFT folds in the
// weight's dtype; float32 keeps the adapter's delta exact to one rounding); the others keep the
// base's bytes, so their τ is exactly zero. A resident sweep does not hold the folded tensors: it
// holds the adapter factored (FactoredAdapter) and forms each folded tensor with the same
// fold_lora_into when a merge reads it. docs/checkpoints.md.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace ms::io {

// A folder holding adapter_config.json.
bool is_lora_adapter(const std::string& folder);
// The base an adapter names (base_model_name_or_path: a path relative to the adapter folder, an
// absolute path, or a hub name from the local cache); throws naming the adapter when none resolves.
std::string lora_adapter_base(const std::string& adapter);
// The cache folder for folded adapters: $MS_CACHE_DIR, else $XDG_CACHE_HOME/mergesweep, else
// ~/.cache/mergesweep (each + "/folded").
std::string folded_cache_dir();
// Folds `adapter` into `base` and returns the folded folder (made once; concurrent callers, e.g.
// the ranks of a sweep, agree on one copy). Throws ms::Error naming the adapter file, the tensor
// or field, what was expected and what was found; nothing half-written is left behind.
std::string fold_lora_adapter(const std::string& adapter, const std::string& base);
// A checkpoint as given in a spec or YAML (`file`, `field` for messages): a model folder or hub
// name (resolve_model_path), an adapter folder folded onto `base` (onto the base the adapter
// names when `base` is empty), or mergekit's `model+adapter` (the adapter folded onto that model).
std::string resolve_checkpoint(const std::string& text, const std::string& base, const std::string& file,
                               const std::string& field);

// For a folded folder: what it was folded from (for the plan's family table).
struct FoldedAdapter {
  std::string adapter;  // the adapter folder
  std::int64_t rank = 0;
};
std::optional<FoldedAdapter> folded_from(const std::string& folder);

// One base tensor as an adapter changes it, in the adapter file's stored dtypes.
struct LoraChange {
  at::Tensor a, b;         // lora_A [r, in] and lora_B [out, r]; undefined: the tensor is only replaced
  double scale = 0;        // lora_alpha / r, or lora_alpha / √r (rsLoRA); r, alpha per module (patterns)
  bool transpose = false;  // fan_in_fan_out, or an embedding's LoRA: (B·A)ᵀ
  at::Tensor replaced;     // modules_to_save or a saved base layer: folded instead of the base's tensor
  bool folds() const { return a.defined(); }
  std::uint64_t nbytes() const;  // a, b and replaced as stored
};

// The fold: out = w + s·B·A in float32, w = c.replaced when defined, else `base` (the base's
// tensor). The folded folder and the resident sweep both call it, so a tensor formed at merge time
// is the folded file's to the bit. `out`: float32, the tensor's shape, on any device; w on out's
// device in any float dtype (widened exactly in the sum). B·A is formed on the CPU whatever out's
// device (a GPU's matmul rounds otherwise); the scaling and the sum are single IEEE roundings, the
// same on every device. Transient: B·A and its scaled copy, two float32 tensors of out's size.
void fold_lora_into(const at::Tensor& out, const LoraChange& c, const at::Tensor& base);

// The adapter of a folded folder, read factored: what a resident sweep holds of it (a few MB)
// instead of the folded model. The tensors are views of the adapter file until copied.
class FactoredAdapter {
 public:
  // The adapter `folded` was folded from, when `folded` is a folded folder (folded_from) made over
  // `base` and the adapter and base still give its fold key; nullopt otherwise (a full checkpoint,
  // another base, an adapter or base changed since: those are read as the folded folder stores them).
  static std::optional<FactoredAdapter> of_folded(const std::string& folded, const std::string& base);
  const std::string& adapter() const { return adapter_; }
  std::int64_t rank() const { return rank_; }
  // The change to base tensor `name`; nullptr when the adapter leaves it (its τ is exactly zero).
  const LoraChange* change(const std::string& name) const;
  const std::map<std::string, LoraChange>& changes() const { return changes_; }

 private:
  std::string adapter_;
  std::int64_t rank_ = 0;
  std::map<std::string, LoraChange> changes_;
};

}  // namespace ms::io
