// Fast paths for the elementwise family: the top-k trim by radix selection on the float bits and
// the TIES election + disjoint merge fused into one pass over the members. They compute exactly
// what kernels_elementwise.cpp states with tensor ops (same float32 operations in the same order
// as mergekit), without stacking the members into an [n, ...] copy.
#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "kernels.hpp"

namespace ms::merge::kernels {
namespace {

inline std::uint32_t abs_bits(float x) {
  std::uint32_t b;
  std::memcpy(&b, &x, 4);
  return b & 0x7FFFFFFFu;
}

// Bits of the k-th largest |x| (k >= 1), by four 8-bit radix passes.
std::uint32_t kth_largest_abs_bits(const float* x, std::int64_t n, std::int64_t k) {
  std::int64_t rank = n - k;  // 0-based rank among ascending |x|
  std::uint32_t prefix = 0;
  for (int pass = 0; pass < 4; ++pass) {
    const int shift = 24 - 8 * pass;
    const std::uint32_t high = pass == 0 ? 0u : ~0u << (32 - 8 * pass);
    std::array<std::int64_t, 256> h{};
    for (std::int64_t i = 0; i < n; ++i) {
      const std::uint32_t b = abs_bits(x[i]);
      if ((b & high) == prefix) ++h[(b >> shift) & 0xFF];
    }
    int d = 0;
    while (d < 255 && rank >= h[d]) rank -= h[d++];
    prefix |= static_cast<std::uint32_t>(d) << shift;
  }
  return prefix;
}

}  // namespace

at::Tensor trim_top_k(const at::Tensor& tau, double density) {
  const std::int64_t n = tau.numel();
  // mergekit: a positive density keeps at least one element.
  const auto k = std::max<std::int64_t>(1, static_cast<std::int64_t>(density * static_cast<double>(n)));
  if (density >= 1.0 || k >= n) return tau;
  if (n == 0) return tau;
  const at::Tensor src = tau.contiguous();
  const float* x = src.data_ptr<float>();
  const std::uint32_t thr = kth_largest_abs_bits(x, n, k);
  // Everything above the threshold, then threshold ties in index order until k are kept.
  std::int64_t above = 0;
  for (std::int64_t i = 0; i < n; ++i) above += abs_bits(x[i]) > thr;
  std::int64_t ties_left = k - above;
  at::Tensor out = at::empty_like(src);
  float* o = out.data_ptr<float>();
  for (std::int64_t i = 0; i < n; ++i) {
    const std::uint32_t b = abs_bits(x[i]);
    const bool keep = b > thr || (b == thr && ties_left-- > 0);
    o[i] = keep ? x[i] : 0.0f;
  }
  return out;
}

Parts ties_consensus(const std::vector<at::Tensor>& tau, const std::vector<double>& w, bool normalize) {
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

}  // namespace ms::merge::kernels
