// What one architecture needs beyond the common Llama layout, resolved once from config.json:
// which optional tensors exist (biases, q/k norms), the RoPE frequencies, the sliding window.
// Internal to ms_model.
#pragma once

#include <cstdint>
#include <string>

#include "mergesweep/io/hf_config.hpp"

namespace ms::model::detail {

// RoPE as transformers' ROPE_INIT_FUNCTIONS compute it; only the types whose attention factor is
// 1 (default, linear, llama3) are supported.
struct RopeSpec {
  std::string type = "default";  // "default" | "linear" | "llama3"
  double theta = 10000.0;
  double factor = 1.0;
  double low_freq_factor = 1.0;               // llama3
  double high_freq_factor = 4.0;              // llama3
  std::int64_t original_max_position = 8192;  // llama3
};

struct ArchSpec {
  bool qkv_bias = false;     // qwen2 always; llama/mistral/qwen3 with attention_bias
  bool o_bias = false;       // llama/mistral/qwen3 with attention_bias (qwen2 never)
  bool mlp_bias = false;     // llama's mlp_bias
  bool qk_norm = false;      // qwen3: RMSNorm over each head of q and k before RoPE
  std::int64_t sliding_window = 0;  // mistral; 0 = full causal attention
  RopeSpec rope;
};

// Throws ms::Error naming `source` for an unsupported model_type, activation or rope type.
ArchSpec resolve_arch(const io::ModelConfig& config, const std::string& source);

}  // namespace ms::model::detail
