// The decoder's building blocks, one function per op, all out-of-place so autograd runs through
// them. Shapes: B batch, T new positions, S = past + T key positions, C hidden, H query heads,
// KV key/value heads, G = H / KV, D head_dim. Internal to ms_model.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "arch.hpp"

namespace ms::model::detail {

// transformers' RMSNorm: statistics in float32, scaled by the weight in the input dtype.
// x: [..., N], w: [N].
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps);

// Inverse frequencies [D/2] (float32), computed with the same float32 ops as transformers.
at::Tensor rope_inv_freq(const RopeSpec& rope, std::int64_t head_dim);

// cos/sin tables [n, D] in float32 for positions 0..n-1, grown on demand and shared between
// threads (a table only ever grows; readers keep the one they got).
class RopeTables {
 public:
  RopeTables(at::Tensor inv_freq, std::int64_t max_positions);
  // Rows [start, start + count) of cos and sin, cast to `dtype`: [count, D].
  std::pair<at::Tensor, at::Tensor> get(std::int64_t start, std::int64_t count, at::ScalarType dtype) const;
  // Rows at arbitrary positions [B, T] (int64, on the tables' device): cos and sin [B, 1, T, D],
  // broadcasting over the heads of [B, heads, T, D].
  // `max_position` (>= 0) is the largest position when the caller knows it; else it is read
  // from the device (a host sync).
  std::pair<at::Tensor, at::Tensor> gather(const at::Tensor& positions, at::ScalarType dtype,
                                           std::int64_t max_position = -1) const;

 private:
  struct Table { at::Tensor cos, sin; std::int64_t n = 0; };
  at::Tensor inv_freq_;
  std::int64_t max_positions_;
  mutable std::mutex mutex_;
  mutable std::shared_ptr<const Table> table_;
  std::shared_ptr<const Table> at_least(std::int64_t need) const;
};

// x: [B, heads, T, D]; cos, sin: [T, D] in x's dtype. x·cos + rotate_half(x)·sin.
at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

// Additive mask [T, S] (0 where query t may see key s, -inf elsewhere), or undefined when every
// query sees every key (a single new position without a sliding window limit).
at::Tensor causal_mask(std::int64_t past, std::int64_t T, std::int64_t sliding_window, at::ScalarType dtype,
                       const at::Device& device);

// Additive mask [B, 1, T, S] (0 where visible, -inf elsewhere) from a bool visibility [B, T, S].
at::Tensor additive_mask(const at::Tensor& visible, at::ScalarType dtype);

// Scaled dot-product attention with grouped queries:
// q: [B, H, T, D], k, v: [B, KV, S, D], mask: [T, S], [B, 1, T, S] or undefined. Returns [B, T, H·D].
// `plain_causal`: the mask is the square causal one (S == T, no window), which fused kernels
// (torch >= 2.5) apply without it.
at::Tensor grouped_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                             bool plain_causal = false);

// The ways grouped_attention can compute, so the choice is visible and testable:
//  Eager: matmul, softmax in float32, matmul (libtorch < 2.5; and the reference in tests).
//  Unmasked: scaled_dot_product_attention with no mask (is_causal for plain_causal) and grouped
//    K/V as they are: eligible for the flash kernel.
//  MaskedGrouped: the mask and grouped K/V as they are (the CPU's fused kernel takes both).
//  MaskedExpanded: the mask, K/V repeated to every query head (repeat_kv's order) and no GQA
//    flag: on a GPU the memory-efficient kernel then takes the mask, where GQA with a mask would
//    leave only the math kernel.
enum class AttentionPath { Eager, Unmasked, MaskedGrouped, MaskedExpanded };
// What grouped_attention takes for these inputs: Unmasked when no mask is needed, MaskedExpanded
// on a GPU with grouped K/V, else MaskedGrouped (Eager before torch 2.5).
AttentionPath attention_path(const at::Tensor& q, const at::Tensor& k, const at::Tensor& mask, bool plain_causal);
const char* attention_path_name(AttentionPath p);
// Which scaled_dot_product_attention kernel PyTorch picks for `path` on these inputs, as it would
// pick it in attention_via: "flash", "memory-efficient", "cudnn", "math" (on the CPU "flash" is
// its fused kernel); "eager" for the Eager path, which calls none.
std::string sdpa_kernel_name(AttentionPath path, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             const at::Tensor& mask, bool plain_causal = false);
// grouped_attention by a given path (tests compare them; plain_causal as above).
at::Tensor attention_via(AttentionPath path, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                         const at::Tensor& mask, bool plain_causal = false);

// SwiGLU: down(silu(gate(x)) · up(x)). Biases may be undefined.
at::Tensor swiglu(const at::Tensor& x, const at::Tensor& gate_w, const at::Tensor& gate_b, const at::Tensor& up_w,
                  const at::Tensor& up_b, const at::Tensor& down_w, const at::Tensor& down_b);

}  // namespace ms::model::detail
