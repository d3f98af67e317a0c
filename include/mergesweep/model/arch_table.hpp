// The architecture table: every tensor of a decoder checkpoint as data, one table per
// architecture (mergekit's `_data/architectures/llama.json` is the model). A template names the
// tensor ("model.layers.{L}.self_attn.q_proj.weight"), its shape comes from the config's sizes,
// and its kind (embed, attention, MLP, norm, head) is an enum. Readers (integrity checks,
// synthetic families, the trainer, the decoder) and per-kind statistics (merge model_stats, the
// archive's l2_<kind> columns) all take names, shapes and kinds from here; adding an architecture
// is one table in arch_table.cpp plus its tests.
//
// Today: the Llama layout, which mistral, qwen2 and qwen3 share for the required tensors (their
// optional biases and q/k norms are resolved by the decoder from config.json).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ms::model {

// Kinds of tensors, in the order of the archive's model_stats l2_<kind> columns (part of the
// archive format: never reorder, only append before Other with a format version bump).
enum class TensorKind { Embed, LmHead, Attn, Mlp, Norm, Other };

const std::vector<TensorKind>& all_tensor_kinds();
const char* kind_name(TensorKind k);                      // "embed", "lm_head", "attn", "mlp", "norm", "other"
const std::vector<std::string>& tensor_kind_names();       // the names of all_tensor_kinds(), in order
// The kind of a tensor by its HF name, for any supported architecture (extra tensors, e.g.
// biases or q/k norms, fall into their block's kind; unknown ones into Other).
TensorKind tensor_kind(const std::string& name);

// The sizes a config gives (io::ModelConfig's fields; plain numbers so every module can use it).
struct ArchDims {
  std::int64_t vocab = 0, hidden = 0, ffn = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0;
  bool tied = false;  // tie_word_embeddings: no lm_head.weight
};

struct TensorSpec {
  std::string name;
  std::vector<std::int64_t> shape;
  TensorKind kind;
  bool per_layer;  // one per decoder layer (name has the layer index)
};

// Every required tensor in checkpoint order: embed, layer 0..L-1, final norm, lm_head (untied).
std::vector<TensorSpec> llama_tensors(const ArchDims& d);
// The required tensors outside the layers (embed, final norm, lm_head unless tied).
std::vector<TensorSpec> llama_global_tensors(const ArchDims& d);
// The required tensors of decoder layer `layer`, in checkpoint order.
std::vector<TensorSpec> llama_layer_tensors(const ArchDims& d, std::int64_t layer);
// The HF name of a layer template's tensor: layer_tensor_name(3, "self_attn.q_proj.weight").
std::string layer_tensor_name(std::int64_t layer, const std::string& suffix);
// The 2-D projection weights of a layer (q, k, v, o, gate, up, down): the matrices that
// subspace boosting and per-layer methods treat as linear maps.
bool is_layer_projection(const std::string& name);

}  // namespace ms::model
