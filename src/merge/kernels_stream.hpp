// Internal: the building blocks of the fused CPU kernels (kernels_fused.cpp, kernels_pairwise.cpp):
// each input read at its own stored dtype and widened to float32 block by block, the output
// rounded to its dtype, and the block loop that yields the change from θ₀ in the same pass.
// Included by the fused kernels' sources only (compiled at -O3), never by a public header.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels.hpp"

namespace ms::merge::kernels::stream {

// Widening to float32: bfloat16 is the high half of a float (exact, and a plain shift the
// compiler vectorizes); other types through their own conversion.
inline void widen(const c10::BFloat16* in, float* out, std::int64_t n) {
  const auto* __restrict bits = reinterpret_cast<const std::uint16_t*>(in);
  auto* __restrict o = reinterpret_cast<std::uint32_t*>(out);
  for (std::int64_t j = 0; j < n; ++j) o[j] = static_cast<std::uint32_t>(bits[j]) << 16;
}
template <typename In>
inline void widen(const In* in, float* out, std::int64_t n) {
  for (std::int64_t j = 0; j < n; ++j) out[j] = static_cast<float>(in[j]);
}

// acc[j] += (widen(x[j]) − b[j]) · w. bfloat16 is widened inside the loop (one pass, which
// vectorizes: zero-extend and shift); other types go through `scratch` first.
inline void accumulate_delta(float* __restrict acc, const c10::BFloat16* x, const float* __restrict b, float w,
                             float* /*scratch*/, std::int64_t n) {
  const auto* __restrict bits = reinterpret_cast<const std::uint16_t*>(x);
  for (std::int64_t j = 0; j < n; ++j) {
    const std::uint32_t u = static_cast<std::uint32_t>(bits[j]) << 16;
    float v;
    std::memcpy(&v, &u, 4);
    acc[j] += (v - b[j]) * w;
  }
}
template <typename In>
inline void accumulate_delta(float* __restrict acc, const In* x, const float* __restrict b, float w, float* scratch,
                             std::int64_t n) {
  widen(x, scratch, n);
  const float* __restrict px = scratch;
  for (std::int64_t j = 0; j < n; ++j) acc[j] += (px[j] - b[j]) * w;
}

// Narrowing from float32 with round-to-nearest-even, as c10::BFloat16/ATen's .to() do for finite
// values (NaN is never stored: a non-finite result fails the merge). Branch-free, so it vectorizes.
inline void store(c10::BFloat16* out, const float* in, std::int64_t n) {
  auto* __restrict o = reinterpret_cast<std::uint16_t*>(out);
  const float* __restrict v = in;
  for (std::int64_t j = 0; j < n; ++j) {
    std::uint32_t u;
    std::memcpy(&u, &v[j], 4);
    o[j] = static_cast<std::uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
  }
}
template <typename Out>
inline void store(Out* out, const float* in, std::int64_t n) {
  for (std::int64_t j = 0; j < n; ++j) out[j] = static_cast<Out>(in[j]);
}

// Each input is read at its own stored dtype: the dtype travels with the pointer and is
// dispatched per block (a switch per 4096 values, nothing per element), so a bf16 member over a
// float32 base is widened exactly as it is stored, never read as float32 (issue: a family with
// mixed dtypes read every member at the base's dtype, past the end of the smaller buffers).
template <typename Fn>
inline void dispatch_stored(const StoredSpan& s, Fn&& fn) {
  switch (s.type) {
    case c10::ScalarType::BFloat16: return fn(static_cast<const c10::BFloat16*>(s.data));
    case c10::ScalarType::Half: return fn(static_cast<const c10::Half*>(s.data));
    case c10::ScalarType::Float: return fn(static_cast<const float*>(s.data));
    case c10::ScalarType::Double: return fn(static_cast<const double*>(s.data));  // rounded, as .to(kFloat)
    default: TORCH_CHECK(false, "merge kernel: stored dtype ", s.type, " is not a float dtype it reads");
  }
}
inline void widen_stored(const StoredSpan& s, std::int64_t offset, float* out, std::int64_t n) {
  dispatch_stored(s, [&](const auto* p) { widen(p + offset, out, n); });
}
inline void accumulate_stored(float* acc, const StoredSpan& s, std::int64_t offset, const float* b, float w,
                              float* scratch, std::int64_t n) {
  dispatch_stored(s, [&](const auto* p) { accumulate_delta(acc, p + offset, b, w, scratch, n); });
}

// Blocks of kBlock elements over θ₀ and the members: `combine(b0, offset, len, acc, scratch, vs)`
// writes the merged block into vs from θ₀'s block b0 (acc and scratch are block-sized buffers it
// may use). The inner loops are contiguous (vectorized); each element sees the float operations
// of the method's tensor kernel in the same order. The output is rounded to its dtype, and with
// `with_stats` the squared change from θ₀ and the non-finite count come out of the same pass.
constexpr std::int64_t kStreamBlock = 4096;

template <typename Out, typename Combine>
StreamStats stream_blocks(Out* out, const StoredSpan& base, std::int64_t n, bool with_stats, Combine&& combine) {
  constexpr std::int64_t kBlock = kStreamBlock;
  const std::int64_t nblocks = (n + kBlock - 1) / kBlock;
  // Per-block partial sums, added up in block order: the same L2 whatever the thread count.
  std::vector<double> sq(static_cast<std::size_t>(nblocks), 0.0);
  std::vector<std::int64_t> bad(static_cast<std::size_t>(nblocks), 0);
  at::parallel_for(0, nblocks, 16, [&](std::int64_t blk0, std::int64_t blk1) {
    std::vector<float> b0(kBlock), x(kBlock), acc(kBlock), staged(kBlock);
    for (std::int64_t blk = blk0; blk < blk1; ++blk) {
      const std::int64_t b = blk * kBlock;
      const std::int64_t len = std::min(kBlock, n - b);
      widen_stored(base, b, b0.data(), len);
      // A float32 output is written in place; others staged, then rounded.
      float* vs = nullptr;
      if constexpr (std::is_same_v<Out, float>) vs = out + b;
      else vs = staged.data();
      combine(static_cast<const float*>(b0.data()), b, len, acc.data(), x.data(), vs);
      if constexpr (!std::is_same_v<Out, float>) store(out + b, vs, len);
      if (!with_stats) continue;  // the serial float64 sum below costs as much as the merge itself
      std::int64_t nonfinite = 0;
      for (std::int64_t j = 0; j < len; ++j) {
        std::uint32_t bits;
        std::memcpy(&bits, &vs[j], 4);
        nonfinite += (bits & 0x7F800000u) == 0x7F800000u;  // NaN or Inf: the caller fails the merge
      }
      double s2 = 0;
      for (std::int64_t j = 0; j < len; ++j) {
        const float d = vs[j] - b0[j];
        s2 += static_cast<double>(d) * d;
      }
      sq[static_cast<std::size_t>(blk)] = s2;
      bad[static_cast<std::size_t>(blk)] = nonfinite;
    }
  });
  StreamStats total;
  for (std::int64_t blk = 0; blk < nblocks; ++blk) {
    total.sq_change += sq[static_cast<std::size_t>(blk)];
    total.non_finite += bad[static_cast<std::size_t>(blk)];
  }
  return total;
}

// The members' τ over block [off, off + len) into taus[i·kStreamBlock ...]: θᵢ widened less θ₀'s
// block `pb`, or τᵢ given in float32 (tau_given).
inline void widen_taus(const std::vector<StoredSpan>& models, const float* __restrict pb, std::int64_t off,
                       std::int64_t len, bool tau_given, float* taus) {
  for (std::size_t i = 0; i < models.size(); ++i) {
    float* __restrict t = taus + i * static_cast<std::size_t>(kStreamBlock);
    widen_stored(models[i], off, t, len);
    if (!tau_given)
      for (std::int64_t j = 0; j < len; ++j) t[j] = t[j] - pb[j];
  }
}

// The runs of block [off, off + len) that lie in one group of `group_len` consecutive elements
// (a row, or the whole tensor): fn(group, j0, j1) for each, j relative to the block.
template <typename Fn>
inline void for_each_run(std::int64_t off, std::int64_t len, std::int64_t group_len, Fn&& fn) {
  for (std::int64_t j = 0; j < len;) {
    const std::int64_t g = (off + j) / group_len;
    const std::int64_t end = std::min(len, (g + 1) * group_len - off);
    fn(g, j, end);
    j = end;
  }
}

// Pass 1 of the two-pass kernels: `block(off, len, emit)` calls emit(group, sums) with the k sums
// of each of its runs; the runs are added per group in block order, so each group's sums are the
// same whatever the thread count. Returns [groups × k].
template <typename Block>
std::vector<double> sums_by_group(std::int64_t n, std::int64_t group_len, std::size_t k, Block&& block) {
  const std::int64_t nblocks = (n + kStreamBlock - 1) / kStreamBlock;
  std::vector<std::vector<std::int64_t>> groups(static_cast<std::size_t>(nblocks));
  std::vector<std::vector<double>> values(static_cast<std::size_t>(nblocks));
  at::parallel_for(0, nblocks, 16, [&](std::int64_t blk0, std::int64_t blk1) {
    for (std::int64_t blk = blk0; blk < blk1; ++blk) {
      auto& g_out = groups[static_cast<std::size_t>(blk)];
      auto& v_out = values[static_cast<std::size_t>(blk)];
      const std::int64_t off = blk * kStreamBlock;
      block(off, std::min(kStreamBlock, n - off), [&](std::int64_t g, const double* sums) {
        g_out.push_back(g);
        v_out.insert(v_out.end(), sums, sums + k);
      });
    }
  });
  std::vector<double> total(static_cast<std::size_t>((n + group_len - 1) / group_len) * k, 0.0);
  for (std::size_t blk = 0; blk < groups.size(); ++blk)
    for (std::size_t r = 0; r < groups[blk].size(); ++r)
      for (std::size_t i = 0; i < k; ++i)
        total[static_cast<std::size_t>(groups[blk][r]) * k + i] += values[blk][r * k + i];
  return total;
}

// Runs fn(Out* out) at the output's dtype (bf16, f16, f32): the streaming kernels' one switch.
template <typename Fn>
StreamStats dispatch_out(void* out, c10::ScalarType out_type, const char* kernel, Fn&& fn) {
  switch (out_type) {
    case c10::ScalarType::BFloat16: return fn(static_cast<c10::BFloat16*>(out));
    case c10::ScalarType::Half: return fn(static_cast<c10::Half*>(out));
    case c10::ScalarType::Float: return fn(static_cast<float*>(out));
    default: TORCH_CHECK(false, kernel, ": output dtype ", out_type, " is not bf16, f16 or f32");
  }
}

}  // namespace ms::merge::kernels::stream
