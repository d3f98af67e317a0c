// config.json of a Hugging Face decoder model, parsed into a typed struct and validated once.
// The raw text is kept so writers pass it through unchanged.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mergesweep/model/arch_table.hpp"

namespace ms::io {

struct ModelConfig {
  std::string model_type;               // "llama", "mistral", "qwen2", "qwen3", ...
  std::vector<std::string> architectures;
  std::int64_t hidden_size = 0;
  std::int64_t intermediate_size = 0;
  std::int64_t num_hidden_layers = 0;
  std::int64_t num_attention_heads = 0;
  std::int64_t num_key_value_heads = 0;  // defaults to num_attention_heads
  std::int64_t head_dim = 0;             // defaults to hidden_size / num_attention_heads
  std::int64_t vocab_size = 0;
  std::int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = false;
  bool attention_bias = false;
  std::vector<std::int64_t> eos_token_ids;  // eos_token_id (an id or a list; empty when absent or null)
  std::string torch_dtype;               // may be empty
  std::string rope_scaling_json;         // "null" when absent
  std::string text;                      // the file as read

  bool is_known_decoder() const;
};

// Throws ms::Error naming `path` and the field.
ModelConfig parse_model_config(const std::string& text, const std::string& path);
ModelConfig read_model_config(const std::string& path);
// The sizes the architecture table takes (model::llama_tensors) from a parsed config.
model::ArchDims arch_dims(const ModelConfig& c);

// What a Llama config.json written by mergesweep (synth and testbed families) says. The optional
// fields are written only when set, in transformers' order, so each writer's file keeps its bytes.
struct LlamaConfigFields {
  std::int64_t hidden = 0, intermediate = 0, layers = 0, heads = 0, kv_heads = 0, vocab = 0;
  std::int64_t max_positions = 2048;
  bool tied = false;
  std::string dtype;
  std::int64_t bos = 1, eos = 2;
  bool head_dim = false;                       // write head_dim (= hidden / heads)
  bool mlp_bias_and_init = false;              // write mlp_bias false and initializer_range 0.02
  std::optional<std::int64_t> pad;             // pad_token_id
};
std::string llama_config_json(const LlamaConfigFields& f);  // pretty-printed, ending in a newline

}  // namespace ms::io
