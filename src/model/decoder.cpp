#include "mergesweep/model/decoder.hpp"

#include <ATen/ATen.h>

#include <tuple>

#include "arch.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/io/family_check.hpp"
#include "mergesweep/io/hf_model.hpp"
#include "ops.hpp"

namespace ms::model {

using detail::ArchSpec;

// ---------------------------------------------------------------------------------------- cache

std::int64_t KvCache::length() const {
  if (filled >= 0) return filled;
  return k.empty() || !k[0].defined() ? 0 : k[0].size(2);
}

KvCache KvCache::expand(std::int64_t n) const {
  // Batch 1 expands as a view (no copy until the next forward concatenates); batch B repeats
  // each row n times in place, so row b·n + j continues context b.
  KvCache out;
  const std::int64_t len = length();
  auto grow = [n, len](const at::Tensor& t) {
    if (!t.defined()) return t;
    const at::Tensor c = t.narrow(2, 0, len);
    return c.size(0) == 1 ? c.expand({n, c.size(1), c.size(2), c.size(3)}) : c.repeat_interleave(n, 0);
  };
  for (const auto& t : k) out.k.push_back(grow(t));
  for (const auto& t : v) out.v.push_back(grow(t));
  return out;
}

void KvCache::keep_rows(const at::Tensor& rows) {
  for (auto& t : k)
    if (t.defined()) t = t.index_select(0, rows);
  for (auto& t : v)
    if (t.defined()) t = t.index_select(0, rows);
}

// -------------------------------------------------------------------------------------- weights

namespace {

struct Layer {
  at::Tensor input_norm, post_attention_norm;
  at::Tensor q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b;  // biases undefined when absent
  at::Tensor q_norm, k_norm;                          // qwen3
  at::Tensor gate_w, gate_b, up_w, up_b, down_w, down_b;
};

std::string shape_text(at::IntArrayRef s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

}  // namespace

struct Decoder::Impl {
  io::ModelConfig config;
  ArchSpec arch;
  at::ScalarType dtype = at::kFloat;
  std::string source;
  at::Tensor embed, final_norm, lm_head;  // lm_head aliases embed when tied
  std::vector<Layer> layers;
  std::vector<std::pair<std::string, at::Tensor>> named;
  std::unique_ptr<detail::RopeTables> rope;

  // Looks a tensor up by HF name, checks its shape and converts it to the compute dtype once.
  at::Tensor take(const Decoder::TensorGetter& get, const std::string& name, const std::vector<std::int64_t>& shape,
                  bool required = true) {
    at::Tensor t = get(name);
    if (!t.defined()) {
      if (!required) return t;
      fail(source, name, "missing; a " + config.model_type + " model with this config.json needs it");
    }
    if (t.sizes() != at::IntArrayRef(shape)) {
      fail(source, name, "has shape " + shape_text(t.sizes()) + ", expected " + shape_text(shape) + " from config.json");
    }
    if (!at::isFloatingType(t.scalar_type())) {
      fail(source, name, std::string("has dtype ") + c10::toString(t.scalar_type()) + ", expected a floating type");
    }
    if (t.scalar_type() != dtype) t = t.to(dtype);  // same dtype: used as given (zero-copy, keeps requires_grad)
    named.emplace_back(name, t);
    return t;
  }

  void check_ids(const at::Tensor& ids, std::int64_t past, const ForwardOptions& opts) const;
  void check_packed(const at::Tensor& ids, std::int64_t past, const ForwardOptions& opts) const;
  at::Tensor layer_forward(const Layer& L, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                           const at::Tensor& mask, bool plain_causal, at::Tensor* k_cache, at::Tensor* v_cache,
                           std::int64_t filled) const;
};

Decoder::Decoder() : impl_(std::make_unique<Impl>()) {}
Decoder::~Decoder() = default;

const io::ModelConfig& Decoder::config() const { return impl_->config; }
at::ScalarType Decoder::dtype() const { return impl_->dtype; }
std::vector<std::pair<std::string, at::Tensor>> Decoder::named_parameters() const { return impl_->named; }
at::Device Decoder::device() const { return impl_->embed.device(); }
std::int64_t Decoder::sliding_window() const { return impl_->arch.sliding_window; }

std::unique_ptr<Decoder> Decoder::create(const io::ModelConfig& config, const TensorGetter& get, at::ScalarType dtype,
                                         const std::string& source) {
  if (dtype != at::kFloat && dtype != at::kBFloat16 && dtype != at::kHalf) {
    fail(source, "dtype", std::string("compute dtype ") + c10::toString(dtype) + " is not supported; use float32, bfloat16 or float16");
  }
  std::unique_ptr<Decoder> d(new Decoder());
  Impl& m = *d->impl_;
  m.config = config;
  m.arch = detail::resolve_arch(config, source);
  m.dtype = dtype;
  m.source = source;

  const std::int64_t C = config.hidden_size, I = config.intermediate_size, V = config.vocab_size;
  const std::int64_t H = config.num_attention_heads, KV = config.num_key_value_heads, D = config.head_dim;
  const ArchSpec& a = m.arch;
  m.embed = m.take(get, "model.embed_tokens.weight", {V, C});
  for (std::int64_t l = 0; l < config.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    Layer L;
    L.input_norm = m.take(get, p + "input_layernorm.weight", {C});
    L.q_w = m.take(get, p + "self_attn.q_proj.weight", {H * D, C});
    L.k_w = m.take(get, p + "self_attn.k_proj.weight", {KV * D, C});
    L.v_w = m.take(get, p + "self_attn.v_proj.weight", {KV * D, C});
    L.o_w = m.take(get, p + "self_attn.o_proj.weight", {C, H * D});
    if (a.qkv_bias) {
      L.q_b = m.take(get, p + "self_attn.q_proj.bias", {H * D});
      L.k_b = m.take(get, p + "self_attn.k_proj.bias", {KV * D});
      L.v_b = m.take(get, p + "self_attn.v_proj.bias", {KV * D});
    }
    if (a.o_bias) L.o_b = m.take(get, p + "self_attn.o_proj.bias", {C});
    if (a.qk_norm) {
      L.q_norm = m.take(get, p + "self_attn.q_norm.weight", {D});
      L.k_norm = m.take(get, p + "self_attn.k_norm.weight", {D});
    }
    L.post_attention_norm = m.take(get, p + "post_attention_layernorm.weight", {C});
    L.gate_w = m.take(get, p + "mlp.gate_proj.weight", {I, C});
    L.up_w = m.take(get, p + "mlp.up_proj.weight", {I, C});
    L.down_w = m.take(get, p + "mlp.down_proj.weight", {C, I});
    if (a.mlp_bias) {
      L.gate_b = m.take(get, p + "mlp.gate_proj.bias", {I});
      L.up_b = m.take(get, p + "mlp.up_proj.bias", {I});
      L.down_b = m.take(get, p + "mlp.down_proj.bias", {C});
    }
    m.layers.push_back(std::move(L));
  }
  m.final_norm = m.take(get, "model.norm.weight", {C});
  // Tied: the embedding is the output projection (a checkpoint may still carry a copy of
  // lm_head.weight; it is ignored, as transformers ties it away).
  m.lm_head = config.tie_word_embeddings ? m.embed : m.take(get, "lm_head.weight", {V, C});
  m.rope = std::make_unique<detail::RopeTables>(detail::rope_inv_freq(a.rope, D).to(m.embed.device()),
                                                config.max_position_embeddings);
  return d;
}

std::unique_ptr<Decoder> Decoder::load(const std::string& folder, at::ScalarType dtype, const at::Device& device) {
  const io::HfModel model = io::HfModel::open(folder);
  if (!model.config()) fail(folder, "", "not a model folder (config.json and safetensors expected)");
  io::check_model(model);  // every tensor in a float dtype (mixtures are each widened/rounded to `dtype`)
  // Views into the mapped files (each keeps its mapping alive after `model` goes), copied only
  // when the device or the dtype differs.
  auto get = [&](const std::string& name) {
    if (!model.find(name)) return at::Tensor();
    const at::Tensor t = model.tensor(name);
    return device.is_cpu() ? t : t.to(device, at::isFloatingType(t.scalar_type()) ? dtype : t.scalar_type());
  };
  return create(*model.config(), get, dtype, model.path());
}

// -------------------------------------------------------------------------------------- forward

void Decoder::Impl::check_ids(const at::Tensor& ids, std::int64_t past, const ForwardOptions& opts) const {
  if (ids.dim() != 2 || ids.scalar_type() != at::kLong) {
    fail(source, "input_ids", "must be an int64 tensor [batch, length], got " + std::string(c10::toString(ids.scalar_type())) +
                                  " " + shape_text(ids.sizes()));
  }
  if (ids.size(0) == 0 || ids.size(1) == 0) {
    fail(source, "input_ids", "is empty " + shape_text(ids.sizes()) + "; at least one sequence of one position is needed");
  }
  const std::int64_t lo = opts.ids_checked ? 0 : ids.min().item<std::int64_t>();
  const std::int64_t hi = opts.ids_checked ? 0 : ids.max().item<std::int64_t>();
  if (lo < 0 || hi >= config.vocab_size) {
    fail(source, "input_ids", "token id " + std::to_string(lo < 0 ? lo : hi) + " is out of range [0, " +
                                  std::to_string(config.vocab_size) + ") for vocab_size " +
                                  std::to_string(config.vocab_size));
  }
  if (opts.positions.defined() || opts.visible.defined()) return check_packed(ids, past, opts);
  const std::int64_t total = past + ids.size(1);
  if (config.max_position_embeddings > 0 && total > config.max_position_embeddings) {
    fail(source, "input_ids", "sequence of " + std::to_string(total) + " positions (" + std::to_string(past) +
                                  " cached + " + std::to_string(ids.size(1)) +
                                  " new) exceeds max_position_embeddings " +
                                  std::to_string(config.max_position_embeddings));
  }
}

void Decoder::Impl::check_packed(const at::Tensor& ids, std::int64_t past, const ForwardOptions& opts) const {
  const std::int64_t B = ids.size(0), T = ids.size(1);
  if (!opts.positions.defined() || !opts.visible.defined())
    fail(source, "positions", "packed inputs need both positions [B, T] and visible [B, T, S]");
  if (opts.positions.sizes() != at::IntArrayRef({B, T}) || opts.positions.scalar_type() != at::kLong)
    fail(source, "positions", "must be int64 " + shape_text({B, T}) + ", got " + shape_text(opts.positions.sizes()));
  if (opts.visible.sizes() != at::IntArrayRef({B, T, past + T}) || opts.visible.scalar_type() != at::kBool)
    fail(source, "visible", "must be bool " + shape_text({B, T, past + T}) + ", got " + shape_text(opts.visible.sizes()));
  const bool known = opts.max_position >= 0;  // the caller's bound: no read-back
  const std::int64_t lo = known ? 0 : opts.positions.min().item<std::int64_t>();
  const std::int64_t hi = known ? opts.max_position : opts.positions.max().item<std::int64_t>();
  if (lo < 0 || (config.max_position_embeddings > 0 && hi >= config.max_position_embeddings))
    fail(source, "positions", "position " + std::to_string(lo < 0 ? lo : hi) + " is outside [0, " +
                                  std::to_string(config.max_position_embeddings) + ") (max_position_embeddings)");
}

// x: [B, T, C] -> [B, T, C]. Pre-norm attention block then pre-norm SwiGLU block, each residual.
at::Tensor Decoder::Impl::layer_forward(const Layer& L, const at::Tensor& x, const at::Tensor& cos,
                                        const at::Tensor& sin, const at::Tensor& mask, bool plain_causal,
                                        at::Tensor* k_cache, at::Tensor* v_cache, std::int64_t filled) const {
  const std::int64_t B = x.size(0), T = x.size(1);
  const std::int64_t H = config.num_attention_heads, KV = config.num_key_value_heads, D = config.head_dim;
  const double eps = config.rms_norm_eps;

  const at::Tensor h = detail::rms_norm(x, L.input_norm, eps);
  at::Tensor q = at::linear(h, L.q_w, L.q_b).view({B, T, H, D});
  at::Tensor k = at::linear(h, L.k_w, L.k_b).view({B, T, KV, D});
  at::Tensor v = at::linear(h, L.v_w, L.v_b).view({B, T, KV, D}).transpose(1, 2);  // [B, KV, T, D]
  if (arch.qk_norm) {  // qwen3: per-head RMSNorm before RoPE
    q = detail::rms_norm(q, L.q_norm, eps);
    k = detail::rms_norm(k, L.k_norm, eps);
  }
  q = detail::apply_rope(q.transpose(1, 2), cos, sin);  // [B, H, T, D]
  k = detail::apply_rope(k.transpose(1, 2), cos, sin);  // [B, KV, T, D]
  if (k_cache && filled >= 0) {  // preallocated: write the new positions in place
    k_cache->narrow(2, filled, T).copy_(k);
    v_cache->narrow(2, filled, T).copy_(v);
    k = k_cache->narrow(2, 0, filled + T);
    v = v_cache->narrow(2, 0, filled + T);
  } else if (k_cache) {
    if (k_cache->defined() && k_cache->size(2) > 0) {
      k = at::cat({*k_cache, k}, 2);
      v = at::cat({*v_cache, v}, 2);
    }
    *k_cache = k;
    *v_cache = v;
  }
  const at::Tensor attn = at::linear(detail::grouped_attention(q, k, v, mask, plain_causal), L.o_w, L.o_b);
  const at::Tensor x1 = x + attn;
  const at::Tensor h2 = detail::rms_norm(x1, L.post_attention_norm, eps);
  return x1 + detail::swiglu(h2, L.gate_w, L.gate_b, L.up_w, L.up_b, L.down_w, L.down_b);
}

at::Tensor Decoder::forward(const at::Tensor& ids_in, const ForwardOptions& opts) const {
  const Impl& m = *impl_;
  const std::int64_t n_layers = static_cast<std::int64_t>(m.layers.size());
  KvCache* cache = opts.cache;
  if (cache && !cache->k.empty() && (static_cast<std::int64_t>(cache->k.size()) != n_layers ||
                                     cache->v.size() != cache->k.size())) {
    fail(m.source, "kv_cache", "has " + std::to_string(cache->k.size()) + " layers, the model " +
                                   std::to_string(n_layers));
  }
  const std::int64_t past = cache ? cache->length() : 0;
  m.check_ids(ids_in, past, opts);
  const at::Tensor ids = ids_in.to(m.embed.device());
  const std::int64_t B = ids.size(0), T = ids.size(1);
  if (cache && cache->filled >= 0 && !cache->k.empty() &&
      (cache->k[0].size(0) != B || past + T > cache->k[0].size(2))) {
    fail(m.source, "kv_cache", "preallocated for batch " + std::to_string(cache->k[0].size(0)) + " and " +
                                   std::to_string(cache->k[0].size(2)) + " positions; got batch " + std::to_string(B) +
                                   " and " + std::to_string(past) + " + " + std::to_string(T) + " positions");
  }
  if (cache && past > 0 && cache->k[0].size(0) != B) {
    fail(m.source, "kv_cache", "batch " + std::to_string(cache->k[0].size(0)) + " differs from input batch " +
                                   std::to_string(B) + " (use KvCache::expand)");
  }
  if (cache && cache->k.empty()) {
    cache->k.resize(n_layers);
    cache->v.resize(n_layers);
  }

  // Shared by every layer: RoPE rows for the new positions and one mask for this shape.
  at::Tensor cos, sin, mask;
  bool plain_causal = false;
  if (opts.positions.defined()) {
    std::tie(cos, sin) = m.rope->gather(opts.positions.to(m.embed.device()), m.dtype, opts.max_position);  // [B, 1, T, D]
    mask = detail::additive_mask(opts.visible.to(m.embed.device()), m.dtype);          // [B, 1, T, S]
  } else {
    std::tie(cos, sin) = m.rope->get(past, T, m.dtype);
    mask = detail::causal_mask(past, T, m.arch.sliding_window, m.dtype, m.embed.device());
    plain_causal = past == 0 && (m.arch.sliding_window <= 0 || T <= m.arch.sliding_window);
  }

  at::Tensor x = at::embedding(m.embed, ids);  // [B, T, C]
  if (opts.hidden) {
    opts.hidden->clear();
    opts.hidden->reserve(n_layers + 1);
    opts.hidden->push_back(x);
  }
  for (std::int64_t l = 0; l < n_layers; ++l) {
    x = m.layer_forward(m.layers[l], x, cos, sin, mask, plain_causal, cache ? &cache->k[l] : nullptr,
                        cache ? &cache->v[l] : nullptr, cache ? cache->filled : -1);
    if (opts.hidden && l + 1 < n_layers) opts.hidden->push_back(x);
  }
  if (cache && cache->filled >= 0) cache->filled += T;
  x = detail::rms_norm(x, m.final_norm, m.config.rms_norm_eps);
  if (opts.hidden) opts.hidden->push_back(x);
  return x;
}

KvCache Decoder::empty_cache(std::int64_t batch, std::int64_t capacity) const {
  const io::ModelConfig& c = impl_->config;
  KvCache cache;
  cache.filled = 0;
  const auto opts = impl_->embed.options().requires_grad(false);
  for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) {
    cache.k.push_back(at::zeros({batch, c.num_key_value_heads, capacity, c.head_dim}, opts));
    cache.v.push_back(at::zeros({batch, c.num_key_value_heads, capacity, c.head_dim}, opts));
  }
  return cache;
}

at::Tensor Decoder::logits(const at::Tensor& hidden) const { return at::linear(hidden, impl_->lm_head); }

}  // namespace ms::model
