// Fast paths for the elementwise family: the top-k trim by radix selection on the float bits and
// the TIES election + disjoint merge fused into one pass over the members. They compute exactly
// what kernels_elementwise.cpp states with tensor ops (same float32 operations in the same order
// as mergekit), without stacking the members into an [n, ...] copy.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <type_traits>

#include "kernels.hpp"
#include "kernels_stream.hpp"

namespace ms::merge::kernels {
using namespace stream;  // the stored-dtype building blocks (kernels_stream.hpp)
namespace {

inline std::uint32_t abs_bits(float x) {
  std::uint32_t b;
  std::memcpy(&b, &x, 4);
  return b & 0x7FFFFFFFu;
}

// Bits of the k-th largest |x| (k >= 1), by two 16-bit radix passes over the float bits (which
// order like the magnitudes); each pass's histogram is built by all threads and summed.
std::uint32_t kth_largest_abs_bits(const float* x, std::int64_t n, std::int64_t k) {
  std::int64_t rank = n - k;  // 0-based rank among ascending |x|
  std::uint32_t high_bits = 0;
  const int chunks = std::max(1, at::get_num_threads());
  for (int pass = 0; pass < 2; ++pass) {
    // One histogram per worker thread (at::parallel_for over tiny ranges may not split, so the
    // range is the elements); integer counts, so the split never changes the result.
    std::vector<std::vector<std::int64_t>> hs(static_cast<std::size_t>(chunks), std::vector<std::int64_t>(65536, 0));
    at::parallel_for(0, n, 1 << 16, [&](std::int64_t b, std::int64_t e) {
      auto& h = hs[static_cast<std::size_t>(at::get_thread_num()) % hs.size()];
      if (pass == 0) {
        for (std::int64_t i = b; i < e; ++i) ++h[abs_bits(x[i]) >> 16];
      } else {
        for (std::int64_t i = b; i < e; ++i) {
          const std::uint32_t v = abs_bits(x[i]);
          if ((v >> 16) == high_bits) ++h[v & 0xFFFF];
        }
      }
    });
    std::vector<std::int64_t> h(65536, 0);
    for (const auto& part : hs)
      for (int d = 0; d < 65536; ++d) h[d] += part[d];
    int d = 0;
    while (d < 65535 && rank >= h[d]) rank -= h[d++];
    if (pass == 0) high_bits = static_cast<std::uint32_t>(d);
    else return (high_bits << 16) | static_cast<std::uint32_t>(d);
  }
  return 0;
}

// One element of TIES: the members' τ at j in v[0..m) (overwritten with the trimmed, weighted
// values); returns the sign-elected, optionally normalized mix. Shared by ties_into and the
// stored-dtype twin, so the two kernels cannot drift apart.
inline float ties_element(float* v, std::size_t m, std::int64_t j, const std::vector<const TrimRule*>& rules,
                          const std::vector<float>& wf, bool normalize) {
  float sum = 0.0f;
  for (std::size_t i = 0; i < m; ++i) {
    const float x = v[i];
    const TrimRule& r = *rules[i];
    const std::uint32_t bits = abs_bits(x);
    const bool keep = r.keep_all || bits > r.threshold_bits || (bits == r.threshold_bits && j <= r.last_tie);
    v[i] = (keep ? x : 0.0f) * wf[i];
    sum += v[i];
  }
  const float gamma = sum >= 0.0f ? 1.0f : -1.0f;
  float mixed = 0.0f, divisor = 0.0f;
  for (std::size_t i = 0; i < m; ++i) {
    const float s = v[i] > 0.0f ? 1.0f : v[i] < 0.0f ? -1.0f : 0.0f;
    if (s == gamma) {
      mixed += v[i];
      divisor += wf[i];
    }
  }
  if (normalize) mixed = mixed / (divisor == 0.0f ? 1.0f : divisor);
  return mixed;
}

}  // namespace

TrimRule make_trim_rule(const at::Tensor& tau, double density) {
  if (!tau.device().is_cpu()) return make_trim_rule_aten(tau, density);
  TrimRule rule;
  const std::int64_t n = tau.numel();
  const auto k = std::max<std::int64_t>(1, static_cast<std::int64_t>(density * static_cast<double>(n)));
  if (density >= 1.0 || k >= n || n == 0) return rule;
  const at::Tensor src = tau.contiguous();
  const float* x = src.data_ptr<float>();
  rule.keep_all = false;
  rule.threshold_bits = kth_largest_abs_bits(x, n, k);
  const std::int64_t above = at::parallel_reduce(
      0, n, 1 << 16, std::int64_t{0},
      [&](std::int64_t b, std::int64_t e, std::int64_t acc) {
        for (std::int64_t i = b; i < e; ++i) acc += abs_bits(x[i]) > rule.threshold_bits;
        return acc;
      },
      std::plus<std::int64_t>());
  std::int64_t ties_left = k - above;
  for (std::int64_t i = 0; i < n && ties_left > 0; ++i) {
    if (abs_bits(x[i]) == rule.threshold_bits) rule.last_tie = i, --ties_left;
  }
  return rule;
}

void task_arithmetic_into(const at::Tensor& out, const at::Tensor& base, const std::vector<const at::Tensor*>& tau,
                          const std::vector<double>& w, bool normalize, double lambda) {
  if (!out.device().is_cpu()) return task_arithmetic_into_aten(out, base, tau, w, normalize, lambda);
  constexpr std::int64_t kBlock = 4096;
  const std::size_t m = tau.size();
  std::vector<const float*> p;
  std::vector<float> wf;
  double wsum_d = 0;
  for (std::size_t i = 0; i < m; ++i) {
    p.push_back(tau[i]->data_ptr<float>());
    wf.push_back(static_cast<float>(w[i]));
    wsum_d += w[i];
  }
  const float wsum = normalize && wsum_d != 0 ? static_cast<float>(wsum_d) : 1.0f;
  const float lam = static_cast<float>(lambda);
  const float* b = base.data_ptr<float>();
  float* o = out.data_ptr<float>();
  // Blocks keep the accumulator in cache while each model's block streams through it
  // (contiguous inner loops vectorize); per element the float ops and their order are unchanged.
  at::parallel_for(0, out.numel(), kBlock * 16, [&](std::int64_t begin, std::int64_t end) {
    float acc[kBlock];
    for (std::int64_t s0 = begin; s0 < end; s0 += kBlock) {
      const std::int64_t len = std::min(kBlock, end - s0);
      float* __restrict a = acc;
      std::fill(a, a + len, 0.0f);
      for (std::size_t i = 0; i < m; ++i) {
        const float* __restrict x = p[i] + s0;
        const float wi = wf[i];
        for (std::int64_t j = 0; j < len; ++j) a[j] += x[j] * wi;
      }
      const float* __restrict bb = b + s0;
      float* __restrict oo = o + s0;
      for (std::int64_t j = 0; j < len; ++j) oo[j] = bb[j] + (a[j] / wsum) * lam;
    }
  });
}

void ties_into(const at::Tensor& out, const at::Tensor& base, const std::vector<const at::Tensor*>& tau,
               const std::vector<const TrimRule*>& rules, const std::vector<double>& w, bool normalize, double lambda) {
  const std::size_t m = tau.size();
  std::vector<const float*> p;
  std::vector<float> wf;
  for (std::size_t i = 0; i < m; ++i) {
    p.push_back(tau[i]->data_ptr<float>());
    wf.push_back(static_cast<float>(w[i]));
  }
  const float lam = static_cast<float>(lambda);
  const float* b = base.data_ptr<float>();
  float* o = out.data_ptr<float>();
  at::parallel_for(0, out.numel(), 1 << 14, [&](std::int64_t begin, std::int64_t end) {
    std::vector<float> v(m);
    for (std::int64_t j = begin; j < end; ++j) {
      for (std::size_t i = 0; i < m; ++i) v[i] = p[i][j];
      const float mixed = ties_element(v.data(), m, j, rules, wf, normalize);
      o[j] = b[j] + mixed * lam;
    }
  });
}

namespace {

// DARE on member i's τ block (elements [offset, offset + n) of the tensor), in place:
// τ·keep, ÷ density when inverse_density, as parts::dare computes it.
inline void drop_block(float* __restrict t, const DareDrop& d, std::size_t i, std::int64_t offset, std::int64_t n) {
  const std::uint64_t key = d.key[i];
  const std::uint64_t threshold = merge::dare_threshold(d.density[i]);
  const auto df = static_cast<float>(d.density[i]);
  // The keep as a float 1 or 0 (branch-free: a kept entry is a coin flip no branch predicts).
  for (std::int64_t j = 0; j < n; ++j) t[j] = t[j] * static_cast<float>(merge::dare_keeps_below(key, offset + j, threshold));
  if (d.inverse_density)
    for (std::int64_t j = 0; j < n; ++j) t[j] = t[j] / df;
}

// acc[j] += (b[j] + d) · w with d = widen(x[j]) − b[j] (θ given) or d = x[j] (τ given, float32):
// kernels::linear's (θ₀ + τᵢ)·wᵢ, the same float32 operations in the same order.
template <bool kTauGiven, typename In>
inline void accumulate_theta(float* __restrict acc, const In* x, const float* __restrict b, float w, float* scratch,
                             std::int64_t n) {
  widen(x, scratch, n);
  const float* __restrict px = scratch;
  for (std::int64_t j = 0; j < n; ++j) acc[j] += (b[j] + (kTauGiven ? px[j] : px[j] - b[j])) * w;
}
template <bool kTauGiven>
inline void accumulate_theta_stored(float* acc, const StoredSpan& s, std::int64_t offset, const float* b, float w,
                                    float* scratch, std::int64_t n) {
  dispatch_stored(s, [&](const auto* p) { accumulate_theta<kTauGiven>(acc, p + offset, b, w, scratch, n); });
}

// Task arithmetic per block: each model's block added to the accumulator in turn; the same float
// operations in the same order as task_arithmetic_into.
template <typename Out>
StreamStats ta_stream(Out* out, const StoredSpan& base, const std::vector<StoredSpan>& models, std::int64_t n,
                      const std::vector<float>& w, float divisor, float lam, bool with_stats, const DareDrop* drop) {
  return stream_blocks(out, base, n, with_stats,
                       [&](const float* __restrict pb, std::int64_t off, std::int64_t len, float* __restrict pa,
                           float* x, float* __restrict vs) {
                         std::fill(pa, pa + len, 0.0f);
                         for (std::size_t i = 0; i < models.size(); ++i) {
                           if (!drop) {
                             accumulate_stored(pa, models[i], off, pb, w[i], x, len);
                             continue;
                           }
                           widen_stored(models[i], off, x, len);  // τ, dropped, then weighted
                           for (std::int64_t j = 0; j < len; ++j) x[j] = x[j] - pb[j];
                           drop_block(x, *drop, i, off, len);
                           for (std::int64_t j = 0; j < len; ++j) pa[j] += x[j] * w[i];
                         }
                         for (std::int64_t j = 0; j < len; ++j) vs[j] = pb[j] + (pa[j] / divisor) * lam;
                       });
}

// Linear per block: Σ (θ₀ + τᵢ)·wᵢ, ÷ divisor; the same float operations as kernels::linear.
template <typename Out, bool kTauGiven>
StreamStats linear_blocks(Out* out, const StoredSpan& base, const std::vector<StoredSpan>& models, std::int64_t n,
                          const std::vector<float>& w, float divisor, bool with_stats) {
  return stream_blocks(out, base, n, with_stats,
                       [&](const float* __restrict pb, std::int64_t off, std::int64_t len, float* __restrict pa,
                           float* x, float* __restrict vs) {
                         std::fill(pa, pa + len, 0.0f);
                         for (std::size_t i = 0; i < models.size(); ++i)
                           accumulate_theta_stored<kTauGiven>(pa, models[i], off, pb, w[i], x, len);
                         for (std::int64_t j = 0; j < len; ++j) vs[j] = pa[j] / divisor;
                       });
}

// TIES per block: each member's τ block formed (and dropped, for DARE-TIES), then the election per
// element (ties_element, shared with ties_into).
template <typename Out>
StreamStats ties_stream(Out* out, const StoredSpan& base, const std::vector<StoredSpan>& models, std::int64_t n,
                        const std::vector<const TrimRule*>& rules, const std::vector<float>& wf, bool normalize,
                        float lam, const DareDrop* drop, bool with_stats) {
  const std::size_t m = models.size();
  return stream_blocks(out, base, n, with_stats,
                       [&](const float* __restrict pb, std::int64_t off, std::int64_t len, float*, float*,
                           float* __restrict vs) {
                         thread_local std::vector<float> tau, v;  // m blocks and one element's m values
                         tau.resize(m * static_cast<std::size_t>(kStreamBlock));
                         v.resize(m);
                         for (std::size_t i = 0; i < m; ++i) {
                           float* t = tau.data() + i * kStreamBlock;
                           widen_stored(models[i], off, t, len);
                           for (std::int64_t j = 0; j < len; ++j) t[j] = t[j] - pb[j];
                           if (drop) drop_block(t, *drop, i, off, len);
                         }
                         for (std::int64_t j = 0; j < len; ++j) {
                           for (std::size_t i = 0; i < m; ++i) v[i] = tau[i * kStreamBlock + j];
                           vs[j] = pb[j] + ties_element(v.data(), m, off + j, rules, wf, normalize) * lam;
                         }
                       });
}

}  // namespace

StreamStats ties_into_stored(const at::Tensor& out, const at::Tensor& base, const std::vector<const at::Tensor*>& models,
                             const std::vector<const TrimRule*>& rules, const std::vector<double>& w, bool normalize,
                             double lambda, const DareDrop* drop, bool with_stats) {
  std::vector<float> wf;
  wf.reserve(w.size());
  for (double x : w) wf.push_back(static_cast<float>(x));
  std::vector<StoredSpan> spans;
  spans.reserve(models.size());
  for (const at::Tensor* t : models) spans.push_back(stored_span(*t, out.numel()));
  const StoredSpan b = stored_span(base, out.numel());
  TORCH_CHECK(out.is_contiguous(), "ties_into_stored: the output must be contiguous");
  const auto lam = static_cast<float>(lambda);
  switch (out.scalar_type()) {
    case c10::ScalarType::BFloat16:
      return ties_stream(static_cast<c10::BFloat16*>(out.data_ptr()), b, spans, out.numel(), rules, wf, normalize, lam, drop,
                         with_stats);
    case c10::ScalarType::Half:
      return ties_stream(static_cast<c10::Half*>(out.data_ptr()), b, spans, out.numel(), rules, wf, normalize, lam, drop,
                         with_stats);
    case c10::ScalarType::Float:
      return ties_stream(out.data_ptr<float>(), b, spans, out.numel(), rules, wf, normalize, lam, drop, with_stats);
    default: TORCH_CHECK(false, "ties_into_stored: output dtype ", out.scalar_type(), " is not bf16, f16 or f32");
  }
}

StoredSpan stored_span(const at::Tensor& t, std::int64_t numel) {
  TORCH_CHECK(t.device().is_cpu() && t.is_contiguous() && t.numel() == numel,
              "merge kernel: an input of ", t.numel(), " values (", t.scalar_type(), ") where ", numel,
              " contiguous CPU values were expected");
  return {t.data_ptr(), t.scalar_type()};
}

at::Tensor to_float32(const at::Tensor& t) {
  if (!t.device().is_cpu() || t.scalar_type() != at::kBFloat16 || !t.is_contiguous()) return t.to(at::kFloat, false, /*copy=*/true);
  at::Tensor out = at::empty(t.sizes(), at::kFloat);
  const auto* in = static_cast<const c10::BFloat16*>(t.data_ptr());
  float* o = out.data_ptr<float>();
  at::parallel_for(0, t.numel(), 1 << 16, [&](std::int64_t b, std::int64_t e) { widen(in + b, o + b, e - b); });
  return out;
}

void task_vector_into(const at::Tensor& out, const at::Tensor& theta, const at::Tensor& base) {
  const bool fused = theta.device().is_cpu() && theta.scalar_type() == at::kBFloat16 &&
                     base.scalar_type() == at::kBFloat16 && theta.is_contiguous() && base.is_contiguous() &&
                     out.is_contiguous() && out.scalar_type() == at::kFloat;
  if (!fused) {  // widening copy, then subtraction in float32 (θ₀ widened on the fly): no float32 temporaries
    out.copy_(theta);
    const bool narrow = base.scalar_type() == at::kFloat || base.scalar_type() == at::kBFloat16 ||
                        base.scalar_type() == at::kHalf;
    out.sub_(narrow ? base : base.to(at::kFloat));  // a float64 θ₀ is rounded first: the subtraction stays float32
    return;
  }
  const auto* th = static_cast<const std::uint16_t*>(theta.data_ptr());
  const auto* b0 = static_cast<const std::uint16_t*>(base.data_ptr());
  float* o = out.data_ptr<float>();
  at::parallel_for(0, theta.numel(), 1 << 16, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t j = b; j < e; ++j) {
      const std::uint32_t x = static_cast<std::uint32_t>(th[j]) << 16, y = static_cast<std::uint32_t>(b0[j]) << 16;
      float fx, fy;
      std::memcpy(&fx, &x, 4);
      std::memcpy(&fy, &y, 4);
      o[j] = fx - fy;
    }
  });
}

at::Tensor task_vector(const at::Tensor& theta, const at::Tensor& base) {
  at::Tensor out = at::empty(theta.sizes(), at::TensorOptions().dtype(at::kFloat).device(theta.device()));
  task_vector_into(out, theta, base);
  return out;
}

StreamStats task_arithmetic_stream(void* out, c10::ScalarType out_type, const StoredSpan& base,
                                   const std::vector<StoredSpan>& models, std::int64_t n, const std::vector<double>& w,
                                   bool normalize, double lambda, bool with_stats, const DareDrop* drop) {
  std::vector<float> wf;
  double wsum = 0;
  for (double x : w) wf.push_back(static_cast<float>(x)), wsum += x;
  const float divisor = normalize && wsum != 0 ? static_cast<float>(wsum) : 1.0f;
  const auto lam = static_cast<float>(lambda);
  switch (out_type) {
    case c10::ScalarType::BFloat16:
      return ta_stream(static_cast<c10::BFloat16*>(out), base, models, n, wf, divisor, lam, with_stats, drop);
    case c10::ScalarType::Half:
      return ta_stream(static_cast<c10::Half*>(out), base, models, n, wf, divisor, lam, with_stats, drop);
    case c10::ScalarType::Float: return ta_stream(static_cast<float*>(out), base, models, n, wf, divisor, lam, with_stats, drop);
    default: TORCH_CHECK(false, "task_arithmetic_stream: output dtype ", out_type, " is not bf16, f16 or f32");
  }
}

StreamStats linear_stream(void* out, c10::ScalarType out_type, const StoredSpan& base,
                          const std::vector<StoredSpan>& models, std::int64_t n, const std::vector<double>& w,
                          bool normalize, bool tau_given, bool with_stats) {
  std::vector<float> wf;
  double wsum = 0;
  for (double x : w) wf.push_back(static_cast<float>(x)), wsum += x;
  // kernels::linear divides only when normalize; x / 1 is x exactly, so one loop serves both.
  const float divisor = normalize ? static_cast<float>(wsum) : 1.0f;
  const auto run = [&](auto* o) {
    return tau_given ? linear_blocks<std::remove_pointer_t<decltype(o)>, true>(o, base, models, n, wf, divisor, with_stats)
                     : linear_blocks<std::remove_pointer_t<decltype(o)>, false>(o, base, models, n, wf, divisor, with_stats);
  };
  switch (out_type) {
    case c10::ScalarType::BFloat16: return run(static_cast<c10::BFloat16*>(out));
    case c10::ScalarType::Half: return run(static_cast<c10::Half*>(out));
    case c10::ScalarType::Float: return run(static_cast<float*>(out));
    default: TORCH_CHECK(false, "linear_stream: output dtype ", out_type, " is not bf16, f16 or f32");
  }
}

at::Tensor trim_top_k(const at::Tensor& tau, double density) {
  if (!tau.device().is_cpu()) return trim_top_k_aten(tau, density);
  const TrimRule rule = make_trim_rule(tau, density);
  if (rule.keep_all) return tau;
  const at::Tensor src = tau.contiguous();
  const float* x = src.data_ptr<float>();
  at::Tensor out = at::empty_like(src);
  float* o = out.data_ptr<float>();
  at::parallel_for(0, src.numel(), 1 << 16, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i) {
      const std::uint32_t bits = abs_bits(x[i]);
      const bool keep = bits > rule.threshold_bits || (bits == rule.threshold_bits && i <= rule.last_tie);
      o[i] = keep ? x[i] : 0.0f;
    }
  });
  return out;
}

Parts ties_consensus(const std::vector<at::Tensor>& tau, const std::vector<double>& w, bool normalize) {
  if (!tau.at(0).device().is_cpu()) return ties_consensus_aten(tau, w, normalize);
  const std::size_t m = tau.size();
  std::vector<at::Tensor> src;
  std::vector<const float*> p;
  std::vector<float> wf;
  for (std::size_t i = 0; i < m; ++i) {
    src.push_back(tau[i].contiguous());
    p.push_back(src.back().data_ptr<float>());
    wf.push_back(static_cast<float>(w[i]));
  }
  at::Tensor raw = at::empty_like(src[0]);
  at::Tensor div = normalize ? at::empty_like(src[0]) : at::Tensor();
  float* r = raw.data_ptr<float>();
  float* d = normalize ? div.data_ptr<float>() : nullptr;
  at::parallel_for(0, raw.numel(), 1 << 14, [&](std::int64_t b, std::int64_t e) {
    float wt[64];
    std::vector<float> wt_heap(m > 64 ? m : 0);
    float* v = m > 64 ? wt_heap.data() : wt;
    for (std::int64_t j = b; j < e; ++j) {
      float sum = 0.0f;
      for (std::size_t i = 0; i < m; ++i) {
        v[i] = p[i][j] * wf[i];  // weighted, trimmed delta
        sum += v[i];
      }
      const float gamma = sum >= 0.0f ? 1.0f : -1.0f;
      float mixed = 0.0f, divisor = 0.0f;
      for (std::size_t i = 0; i < m; ++i) {
        const float s = v[i] > 0.0f ? 1.0f : v[i] < 0.0f ? -1.0f : 0.0f;
        if (s == gamma) {  // trimmed zeros have sign 0 and never agree
          mixed += v[i];
          divisor += wf[i];
        }
      }
      r[j] = mixed;
      if (d) d[j] = divisor == 0.0f ? 1.0f : divisor;  // mergekit: divisor[divisor == 0] = 1
    }
  });
  if (!normalize) return {raw, at::scalar_tensor(1.0, raw.options())};
  return {raw, div};
}

at::Tensor trim_top_k_aten(const at::Tensor& tau, double density) {
  const std::int64_t n = tau.numel();
  const auto k = std::max<std::int64_t>(1, static_cast<std::int64_t>(density * static_cast<double>(n)));
  if (density >= 1.0 || k >= n || n == 0) return tau;
  const at::Tensor x = tau.contiguous().reshape({-1});
  const at::Tensor mag = x.abs();  // |x| orders like the float bits of |x| the CPU kernel ranks
  const at::Tensor threshold = std::get<0>(at::topk(mag, k, 0, /*largest=*/true, /*sorted=*/false)).min();
  const at::Tensor above = mag > threshold;
  // Ties at the threshold: the first (k − #above) by index, as the CPU kernel keeps them.
  const at::Tensor at_threshold = mag == threshold;
  const at::Tensor ties_left = k - above.sum();
  const at::Tensor keep = above | (at_threshold & (at_threshold.cumsum(0) <= ties_left));
  return at::where(keep, x, at::zeros_like(x)).view(tau.sizes());
}

TrimRule make_trim_rule_aten(const at::Tensor& tau, double density) {
  TrimRule rule;
  const std::int64_t n = tau.numel();
  const auto k = std::max<std::int64_t>(1, static_cast<std::int64_t>(density * static_cast<double>(n)));
  if (density >= 1.0 || k >= n || n == 0) return rule;
  rule.keep_all = false;
  const at::Tensor mag = tau.contiguous().reshape({-1}).abs();
  const float threshold = std::get<0>(at::topk(mag, k, 0, /*largest=*/true, /*sorted=*/false)).min().item<float>();
  std::uint32_t bits;
  std::memcpy(&bits, &threshold, 4);
  rule.threshold_bits = bits & 0x7FFFFFFFu;
  // Ties at the threshold: the first (k − #above) by index are kept, as the radix kernel keeps them.
  // Found slab by slab: a threshold of 0 can tie most of the tensor, and nonzero() over all of it
  // would hold an int64 per tie.
  std::int64_t ties_left = k - (mag > threshold).sum().item<std::int64_t>();
  constexpr std::int64_t kSlab = 1 << 24;
  for (std::int64_t b = 0; b < n && ties_left > 0; b += kSlab) {
    const at::Tensor tied = mag.narrow(0, b, std::min(kSlab, n - b)) == threshold;
    const std::int64_t here = tied.sum().item<std::int64_t>();
    if (here >= ties_left) rule.last_tie = b + at::nonzero(tied).reshape({-1})[ties_left - 1].item<std::int64_t>();
    ties_left -= here;
  }
  return rule;
}

at::Tensor apply_trim_rule(const at::Tensor& tau, const TrimRule& rule, std::int64_t element_offset) {
  if (rule.keep_all) return tau;
  float threshold;
  std::memcpy(&threshold, &rule.threshold_bits, 4);
  const at::Tensor mag = tau.abs();
  at::Tensor keep = mag > threshold;
  if (rule.last_tie >= element_offset) {  // some ties at the threshold fall in this block
    const at::Tensor index = at::arange(element_offset, element_offset + tau.numel(),
                                        at::TensorOptions().dtype(at::kLong).device(tau.device()))
                                 .view(tau.sizes());
    keep = keep | ((mag == threshold) & (index <= rule.last_tie));
  }
  return at::where(keep, tau, at::zeros_like(tau));
}

Parts ties_consensus_aten(const std::vector<at::Tensor>& tau, const std::vector<double>& w, bool normalize) {
  const std::size_t m = tau.size();
  std::vector<at::Tensor> v;
  at::Tensor sum = at::zeros_like(tau[0]);
  for (std::size_t i = 0; i < m; ++i) {
    v.push_back(tau[i] * static_cast<float>(w[i]));  // weighted, trimmed delta (float32 product)
    sum = sum + v[i];                                // added in member order, as the CPU loop
  }
  const at::Tensor gamma = at::where(sum >= 0, at::ones_like(sum), -at::ones_like(sum));
  at::Tensor mixed = at::zeros_like(sum), divisor = at::zeros_like(sum);
  for (std::size_t i = 0; i < m; ++i) {
    const at::Tensor agree = v[i].sign() == gamma;  // trimmed zeros have sign 0 and never agree
    mixed = at::where(agree, mixed + v[i], mixed);
    divisor = at::where(agree, divisor + static_cast<float>(w[i]), divisor);
  }
  if (!normalize) return {mixed, at::scalar_tensor(1.0, mixed.options())};
  return {mixed, at::where(divisor == 0, at::ones_like(divisor), divisor)};
}

void task_arithmetic_into_aten(const at::Tensor& out, const at::Tensor& base, const std::vector<const at::Tensor*>& tau,
                               const std::vector<double>& w, bool normalize, double lambda) {
  double wsum_d = 0;
  for (double x : w) wsum_d += x;
  const float wsum = normalize && wsum_d != 0 ? static_cast<float>(wsum_d) : 1.0f;
  at::Tensor acc = at::zeros_like(out);
  for (std::size_t i = 0; i < tau.size(); ++i) acc = acc + *tau[i] * static_cast<float>(w[i]);  // member order
  // The divisor as a tensor on the device: CUDA turns division by a host scalar into a multiply
  // by its reciprocal, which can differ from the division in the last bit.
  out.copy_(base + (acc / at::scalar_tensor(wsum, acc.options())) * static_cast<float>(lambda));
}

}  // namespace ms::merge::kernels
