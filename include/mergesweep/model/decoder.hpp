// A decoder-only transformer forward pass in ATen ops, built from a HF config.json and named
// tensors: Llama (incl. rope_scaling type "llama3", tied embeddings), Mistral, Qwen2 (q/k/v
// biases), Qwen3 (q_norm/k_norm, explicit head_dim); GQA; float32 or bfloat16 compute.
// Everything is out-of-place ATen ops, so the same code trains under autograd (the testbed) and
// scores under at::NoGradGuard (eval, sweep).
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "mergesweep/io/hf_config.hpp"

namespace ms::model {

// Per-layer keys and values of already-processed positions, for scoring several continuations
// of one shared context: run the context once, then each continuation against the cache.
// Two forms. Grown (the default): k/v hold exactly the cached positions and each forward
// concatenates its new ones. Preallocated (Decoder::empty_cache, for generation): k/v are buffers
// [B, num_kv_heads, capacity, head_dim] of which the first `filled` positions are cached, and a
// forward writes its new positions in place (no copy of the whole cache per decoding step).
struct KvCache {
  std::vector<at::Tensor> k, v;  // per layer: [B, num_kv_heads, T_cached or capacity, head_dim]
  std::int64_t filled = -1;      // preallocated: positions cached; -1: the grown form
  std::int64_t length() const;   // T_cached (0 when empty)
  // The same cache repeated `n` times along the batch (for n continuations of one context); the
  // result is in the grown form.
  KvCache expand(std::int64_t n) const;
  // Keeps the batch rows `rows` (int64 indices on the cache's device), in that order.
  void keep_rows(const at::Tensor& rows);
};

struct ForwardOptions {
  KvCache* cache = nullptr;               // read (past positions) and extended with this call
  // When not null, receives the hidden state entering each layer and the final normed output:
  // hidden->at(0) = embeddings, hidden->at(l) = output of layer l-1, ..., hidden->at(L) = after
  // the final norm. Size num_hidden_layers + 1.
  std::vector<at::Tensor>* hidden = nullptr;
  // Packed inputs (several sequences sharing prefixes in one row, as eval's prefix trees do):
  // `positions` int64 [B, T] gives each new token's position (default: past..past+T-1), and
  // `visible` bool [B, T, past + T] says which cached and new keys each new token attends to
  // (default: causal, with the sliding window). Both or neither. The sliding window is not
  // applied to an explicit `visible`: the caller, who knows the positions, includes it.
  at::Tensor positions;
  at::Tensor visible;
  // What a decoding loop knows on the host, so forward() need not read device tensors back to
  // check them (each read is a host sync, and a loop pays it per token). max_position >= 0: the
  // caller vouches that `positions` lie in [0, max_position]. ids_checked: the caller vouches
  // that the ids lie in [0, vocab_size) (greedy ids are argmaxes over this model's logits).
  std::int64_t max_position = -1;
  bool ids_checked = false;
};

class Decoder {
 public:
  // Builds from tensors looked up by their HF names. `get` returns an undefined tensor for a
  // missing name (then an error names `source` and the tensor). Tensors are converted to
  // `dtype` once (a copy unless they already have it; pass tensors that require grad to train).
  using TensorGetter = std::function<at::Tensor(const std::string&)>;
  static std::unique_ptr<Decoder> create(const io::ModelConfig& config, const TensorGetter& get,
                                         at::ScalarType dtype, const std::string& source);
  // From a HF model folder (config.json + safetensors), weights placed on `device`.
  static std::unique_ptr<Decoder> load(const std::string& folder, at::ScalarType dtype,
                                       const at::Device& device = at::Device(at::kCPU));
  ~Decoder();

  const io::ModelConfig& config() const;
  at::ScalarType dtype() const;
  // The device the weights are on (every forward and its outputs run there).
  at::Device device() const;
  // Mistral's attention window (0 = none): a key more than this many positions back is hidden.
  std::int64_t sliding_window() const;
  // The tensors in use, by HF name (for training: their .grad()).
  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const;

  // ids: int64 [B, T], every id in [0, vocab). Positions continue after the cache's length.
  // Returns the final normed hidden states [B, T, hidden] in the compute dtype.
  // Throws ms::Error for out-of-range ids or a sequence longer than max_position_embeddings.
  at::Tensor forward(const at::Tensor& ids, const ForwardOptions& opts = {}) const;
  // A preallocated cache (zeros) for `batch` rows of up to `capacity` positions, on the model's
  // device in the compute dtype.
  KvCache empty_cache(std::int64_t batch, std::int64_t capacity) const;
  // lm_head (or the tied embedding) applied to hidden states: [..., vocab], compute dtype.
  at::Tensor logits(const at::Tensor& hidden) const;

 private:
  Decoder();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The model types this forward supports ("llama", "mistral", "qwen2", "qwen3").
const std::vector<std::string>& supported_model_types();

}  // namespace ms::model
