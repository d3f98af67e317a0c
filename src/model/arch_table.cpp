#include "mergesweep/model/arch_table.hpp"

#include <array>

namespace ms::model {
namespace {

// What a template's dimension is in terms of the config.
enum class Dim { Vocab, Hidden, Ffn, QOut, KvOut };

struct Template {
  const char* name;  // global: the full name; per layer: the suffix after "model.layers.{L}."
  TensorKind kind;
  std::array<Dim, 2> dims;
  int rank;  // 1 or 2 (dims[0] only for 1-D)
};

// The Llama layout (transformers' LlamaForCausalLM state dict), per layer in checkpoint order.
constexpr Template kLlamaLayer[] = {
    {"input_layernorm.weight", TensorKind::Norm, {Dim::Hidden, Dim::Hidden}, 1},
    {"self_attn.q_proj.weight", TensorKind::Attn, {Dim::QOut, Dim::Hidden}, 2},
    {"self_attn.k_proj.weight", TensorKind::Attn, {Dim::KvOut, Dim::Hidden}, 2},
    {"self_attn.v_proj.weight", TensorKind::Attn, {Dim::KvOut, Dim::Hidden}, 2},
    {"self_attn.o_proj.weight", TensorKind::Attn, {Dim::Hidden, Dim::QOut}, 2},
    {"post_attention_layernorm.weight", TensorKind::Norm, {Dim::Hidden, Dim::Hidden}, 1},
    {"mlp.gate_proj.weight", TensorKind::Mlp, {Dim::Ffn, Dim::Hidden}, 2},
    {"mlp.up_proj.weight", TensorKind::Mlp, {Dim::Ffn, Dim::Hidden}, 2},
    {"mlp.down_proj.weight", TensorKind::Mlp, {Dim::Hidden, Dim::Ffn}, 2},
};
constexpr Template kLlamaEmbed = {"model.embed_tokens.weight", TensorKind::Embed, {Dim::Vocab, Dim::Hidden}, 2};
constexpr Template kLlamaFinalNorm = {"model.norm.weight", TensorKind::Norm, {Dim::Hidden, Dim::Hidden}, 1};
constexpr Template kLlamaHead = {"lm_head.weight", TensorKind::LmHead, {Dim::Vocab, Dim::Hidden}, 2};

constexpr const char* kLayerPrefix = "model.layers.";

std::int64_t size_of(Dim dim, const ArchDims& d) {
  switch (dim) {
    case Dim::Vocab:
      return d.vocab;
    case Dim::Hidden:
      return d.hidden;
    case Dim::Ffn:
      return d.ffn;
    case Dim::QOut:
      return d.heads * d.head_dim;
    case Dim::KvOut:
      return d.kv_heads * d.head_dim;
  }
  return 0;
}

TensorSpec spec(const Template& t, const std::string& name, const ArchDims& d, bool per_layer) {
  TensorSpec s{name, {size_of(t.dims[0], d)}, t.kind, per_layer};
  if (t.rank == 2) s.shape.push_back(size_of(t.dims[1], d));
  return s;
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

}  // namespace

const std::vector<TensorKind>& all_tensor_kinds() {
  static const std::vector<TensorKind> k = {TensorKind::Embed, TensorKind::LmHead, TensorKind::Attn,
                                            TensorKind::Mlp,   TensorKind::Norm,   TensorKind::Other};
  return k;
}

const char* kind_name(TensorKind k) {
  switch (k) {
    case TensorKind::Embed:
      return "embed";
    case TensorKind::LmHead:
      return "lm_head";
    case TensorKind::Attn:
      return "attn";
    case TensorKind::Mlp:
      return "mlp";
    case TensorKind::Norm:
      return "norm";
    case TensorKind::Other:
      break;
  }
  return "other";
}

const std::vector<std::string>& tensor_kind_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (TensorKind k : all_tensor_kinds()) v.emplace_back(kind_name(k));
    return v;
  }();
  return names;
}

TensorKind tensor_kind(const std::string& name) {
  // Norms first: qwen3's self_attn.q_norm/k_norm are norms, not attention projections.
  if (contains(name, "embed_tokens")) return TensorKind::Embed;
  if (contains(name, "lm_head")) return TensorKind::LmHead;
  if (contains(name, "norm")) return TensorKind::Norm;
  if (contains(name, "self_attn")) return TensorKind::Attn;
  if (contains(name, "mlp")) return TensorKind::Mlp;
  return TensorKind::Other;
}

std::string layer_tensor_name(std::int64_t layer, const std::string& suffix) {
  return kLayerPrefix + std::to_string(layer) + "." + suffix;
}

std::vector<TensorSpec> llama_layer_tensors(const ArchDims& d, std::int64_t layer) {
  std::vector<TensorSpec> out;
  for (const Template& t : kLlamaLayer) out.push_back(spec(t, layer_tensor_name(layer, t.name), d, true));
  return out;
}

std::vector<TensorSpec> llama_global_tensors(const ArchDims& d) {
  std::vector<TensorSpec> out = {spec(kLlamaEmbed, kLlamaEmbed.name, d, false),
                                 spec(kLlamaFinalNorm, kLlamaFinalNorm.name, d, false)};
  if (!d.tied) out.push_back(spec(kLlamaHead, kLlamaHead.name, d, false));
  return out;
}

std::vector<TensorSpec> llama_tensors(const ArchDims& d) {
  std::vector<TensorSpec> out = {spec(kLlamaEmbed, kLlamaEmbed.name, d, false)};
  for (std::int64_t l = 0; l < d.layers; ++l) {
    auto layer = llama_layer_tensors(d, l);
    out.insert(out.end(), layer.begin(), layer.end());
  }
  out.push_back(spec(kLlamaFinalNorm, kLlamaFinalNorm.name, d, false));
  if (!d.tied) out.push_back(spec(kLlamaHead, kLlamaHead.name, d, false));
  return out;
}

bool is_layer_projection(const std::string& name) {
  for (const Template& t : kLlamaLayer)
    if (t.rank == 2 && contains(name, (std::string(".") + t.name).c_str())) return true;
  return false;
}

}  // namespace ms::model
