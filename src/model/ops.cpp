#include "ops.hpp"

#include <ATen/ATen.h>
#include <torch/version.h>

#include <cmath>
#include <limits>

#include "mergesweep/core/error.hpp"

namespace ms::model::detail {

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
  // Mean of squares in float32 even for bf16 inputs (bf16 sums lose too much); the scaled value
  // is cast back before the weight multiplies it, as transformers' LlamaRMSNorm does.
  const at::Tensor xf = x.to(at::kFloat);
  const at::Tensor normed = xf * at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return w * normed.to(x.scalar_type());
}

at::Tensor rope_inv_freq(const RopeSpec& rope, std::int64_t head_dim) {
  // inv_freq = 1 / theta^(2i/D), in float32 like transformers (the table values match bit for bit).
  const at::Tensor exponent = at::arange(0, head_dim, 2, at::TensorOptions().dtype(at::kLong)).to(at::kFloat) /
                              static_cast<double>(head_dim);
  at::Tensor inv_freq = at::pow(rope.theta, exponent).reciprocal();
  if (rope.type == "linear") return inv_freq / rope.factor;
  if (rope.type != "llama3") return inv_freq;
  // Llama 3.1 frequency scaling: long wavelengths divided by `factor`, short ones kept, the band
  // between interpolated smoothly (transformers' _compute_llama3_parameters).
  const double old_len = static_cast<double>(rope.original_max_position);
  const double low_freq_wavelen = old_len / rope.low_freq_factor;
  const double high_freq_wavelen = old_len / rope.high_freq_factor;
  // Python's `scalar / tensor` is tensor.reciprocal() * scalar; written the same way so the
  // band thresholds below compare the same float32 values.
  const at::Tensor wavelen = inv_freq.reciprocal() * (2 * M_PI);
  at::Tensor scaled = at::where(wavelen > low_freq_wavelen, inv_freq / rope.factor, inv_freq);
  const at::Tensor smooth =
      (wavelen.reciprocal() * old_len - rope.low_freq_factor) / (rope.high_freq_factor - rope.low_freq_factor);
  const at::Tensor smoothed = (1 - smooth) * scaled / rope.factor + smooth * scaled;
  const at::Tensor is_medium = (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
  return at::where(is_medium, smoothed, scaled);
}

RopeTables::RopeTables(at::Tensor inv_freq, std::int64_t max_positions)
    : inv_freq_(std::move(inv_freq)), max_positions_(max_positions) {}

std::shared_ptr<const RopeTables::Table> RopeTables::at_least(std::int64_t need) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!table_ || table_->n < need) {
    // Grow to the next power of two (at most max_positions when known), so a sweep of growing
    // lengths rebuilds the table a few times, not once per length.
    std::int64_t n = 64;
    while (n < need) n *= 2;
    if (max_positions_ > 0 && n > max_positions_) n = std::max(need, max_positions_);
    auto fresh = std::make_shared<Table>();
    const at::Tensor pos = at::arange(n, inv_freq_.options().dtype(at::kLong)).to(at::kFloat);
    const at::Tensor freqs = at::outer(pos, inv_freq_);  // [n, D/2]: one product each, as transformers
    const at::Tensor emb = at::cat({freqs, freqs}, -1);  // [n, D]
    fresh->cos = emb.cos();
    fresh->sin = emb.sin();
    fresh->n = n;
    table_ = std::move(fresh);
  }
  return table_;
}

std::pair<at::Tensor, at::Tensor> RopeTables::get(std::int64_t start, std::int64_t count, at::ScalarType dtype) const {
  const auto t = at_least(start + count);
  return {t->cos.narrow(0, start, count).to(dtype), t->sin.narrow(0, start, count).to(dtype)};
}

std::pair<at::Tensor, at::Tensor> RopeTables::gather(const at::Tensor& positions, at::ScalarType dtype,
                                                     std::int64_t max_position) const {
  const std::int64_t B = positions.size(0), T = positions.size(1);
  const auto t = at_least((max_position >= 0 ? max_position : positions.max().item<std::int64_t>()) + 1);
  const at::Tensor flat = positions.reshape({-1});
  const std::int64_t D = t->cos.size(1);
  return {t->cos.index_select(0, flat).view({B, 1, T, D}).to(dtype),
          t->sin.index_select(0, flat).view({B, 1, T, D}).to(dtype)};
}

at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const std::int64_t half = x.size(-1) / 2;
  const at::Tensor rotated = at::cat({x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)}, -1);
  return x * cos + rotated * sin;
}

at::Tensor causal_mask(std::int64_t past, std::int64_t T, std::int64_t sliding_window, at::ScalarType dtype,
                       const at::Device& device) {
  const std::int64_t S = past + T;
  if (T == 1 && (sliding_window <= 0 || S <= sliding_window)) return {};
  const auto opts = at::TensorOptions().dtype(at::kLong).device(device);
  const at::Tensor q_pos = at::arange(past, S, opts).unsqueeze(1);  // [T, 1]
  const at::Tensor k_pos = at::arange(S, opts).unsqueeze(0);        // [1, S]
  at::Tensor hidden = k_pos > q_pos;
  if (sliding_window > 0) hidden = hidden.logical_or(q_pos - k_pos >= sliding_window);
  return at::zeros({T, S}, opts.dtype(dtype)).masked_fill(hidden, -std::numeric_limits<double>::infinity());
}

at::Tensor additive_mask(const at::Tensor& visible, at::ScalarType dtype) {
  return at::zeros(visible.sizes(), visible.options().dtype(dtype))
      .masked_fill(visible.logical_not(), -std::numeric_limits<double>::infinity())
      .unsqueeze(1);
}

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 5)
#define MS_SDPA_GQA 1  // scaled_dot_product_attention takes enable_gqa
#else
#define MS_SDPA_GQA 0
#endif

AttentionPath attention_path(const at::Tensor& q, const at::Tensor& k, const at::Tensor& mask, bool plain_causal) {
  if (!MS_SDPA_GQA) return AttentionPath::Eager;
  if (plain_causal || !mask.defined()) return AttentionPath::Unmasked;
  // On a GPU, a mask with grouped K/V leaves only the math kernel (flash takes no mask, the
  // memory-efficient kernel no grouped K/V): repeating K/V costs G copies of them but lets the
  // memory-efficient kernel run. The CPU's fused kernel takes both as they are.
  return q.is_cuda() && q.size(1) != k.size(1) ? AttentionPath::MaskedExpanded : AttentionPath::MaskedGrouped;
}

const char* attention_path_name(AttentionPath p) {
  switch (p) {
    case AttentionPath::Eager: return "eager";
    case AttentionPath::Unmasked: return "unmasked";
    case AttentionPath::MaskedGrouped: return "masked-grouped";
    case AttentionPath::MaskedExpanded: return "masked-expanded";
  }
  return "?";
}

namespace {

// Query head h = kv·G + g uses key/value head kv (transformers' repeat_kv order): fold the G
// query heads of one kv head into the row dimension and multiply against K/V once.
at::Tensor eager_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask) {
  const std::int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3);
  const std::int64_t KV = k.size(1), S = k.size(2), G = H / KV;
  const at::Tensor qg = q.reshape({B, KV, G * T, D});
  at::Tensor scores = at::matmul(qg, k.transpose(-1, -2)) * (1.0 / std::sqrt(static_cast<double>(D)));
  if (mask.defined()) {
    // [T, S] broadcasts as is; a per-row [B, 1, T, S] mask gains the group axis.
    const at::Tensor m = mask.dim() == 4 ? mask.unsqueeze(2) : mask;
    scores = (scores.view({B, KV, G, T, S}) + m).view({B, KV, G * T, S});
  }
  // Softmax in float32 (bf16 exp sums drift), as transformers' eager attention does.
  const at::Tensor probs = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
  return at::matmul(probs, v).view({B, H, T, D});  // [B, KV, G·T, D] is [B, H, T, D]
}

}  // namespace

at::Tensor attention_via(AttentionPath path, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                         const at::Tensor& mask, bool plain_causal) {
  const std::int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3);
  at::Tensor out;
#if MS_SDPA_GQA
  const std::int64_t G = H / k.size(1);
  // The fused kernels never materialize the [B, H, T, S] scores. Their causal flag means the
  // square mask, so with cached positions or a window the explicit mask goes in instead.
  const c10::optional<at::Tensor> m = mask.defined() ? c10::optional<at::Tensor>(mask) : c10::nullopt;
  switch (path) {
    case AttentionPath::Eager: out = eager_attention(q, k, v, mask); break;  // the caller's mask, causal or not
    case AttentionPath::Unmasked:  // flash-eligible: no mask, grouped K/V as they are
      out = at::scaled_dot_product_attention(q, k, v, c10::nullopt, 0.0, plain_causal, c10::nullopt, /*enable_gqa=*/true);
      break;
    case AttentionPath::MaskedGrouped:
      out = at::scaled_dot_product_attention(q, k, v, m, 0.0, false, c10::nullopt, /*enable_gqa=*/true);
      break;
    case AttentionPath::MaskedExpanded:  // repeat_kv's order: query head h reads K/V head h / G
      out = at::scaled_dot_product_attention(q, G > 1 ? k.repeat_interleave(G, 1) : k, G > 1 ? v.repeat_interleave(G, 1) : v,
                                             m, 0.0, false, c10::nullopt, /*enable_gqa=*/false);
      break;
  }
#else
  (void)plain_causal;  // the caller passes the square causal mask it stands for as well
  if (path != AttentionPath::Eager) fail("", "attention", "this libtorch (< 2.5) has only the eager attention path");
  out = eager_attention(q, k, v, mask);
#endif
  return out.transpose(1, 2).reshape({B, T, H * D});
}

std::string sdpa_kernel_name(AttentionPath path, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             const at::Tensor& mask, bool plain_causal) {
#if MS_SDPA_GQA
  if (path == AttentionPath::Eager) return "eager";
  const std::int64_t G = q.size(1) / k.size(1);
  const bool expand = path == AttentionPath::MaskedExpanded && G > 1;
  const at::Tensor kk = expand ? k.repeat_interleave(G, 1) : k, vv = expand ? v.repeat_interleave(G, 1) : v;
  const c10::optional<at::Tensor> m =
      path != AttentionPath::Unmasked && mask.defined() ? c10::optional<at::Tensor>(mask) : c10::nullopt;
  const bool causal = path == AttentionPath::Unmasked && plain_causal;
  // sdp::SDPBackend's values (ATen/native/transformers/sdp_utils_cpp.h), the choice the
  // scaled_dot_product_attention dispatcher makes from the same arguments.
  switch (at::_fused_sdp_choice(q, kk, vv, m, 0.0, causal, c10::nullopt, /*enable_gqa=*/!expand && G > 1)) {
    case 0: return "math";
    case 1: return "flash";
    case 2: return "memory-efficient";
    case 3: return "cudnn";
    default: return "other";
  }
#else
  (void)path, (void)q, (void)k, (void)v, (void)mask, (void)plain_causal;
  return "eager";
#endif
}

at::Tensor grouped_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                             bool plain_causal) {
  return attention_via(attention_path(q, k, mask, plain_causal), q, k, v, mask, plain_causal);
}

at::Tensor swiglu(const at::Tensor& x, const at::Tensor& gate_w, const at::Tensor& gate_b, const at::Tensor& up_w,
                  const at::Tensor& up_b, const at::Tensor& down_w, const at::Tensor& down_b) {
  return at::linear(at::silu(at::linear(x, gate_w, gate_b)) * at::linear(x, up_w, up_b), down_w, down_b);
}

}  // namespace ms::model::detail
