// Model Stock's fused CPU kernel: two streamed passes over the inputs as stored, so that no
// member's τ is formed whole (the generic path holds every τ of a tensor in float32).
#include <ATen/ATen.h>

#include <algorithm>
#include <vector>

#include "kernels.hpp"
#include "kernels_stream.hpp"

namespace ms::merge::kernels {
using namespace stream;
namespace {


// a·b over a run of at most one block: float32 products in eight lanes (each lane's order fixed,
// so the sum is the same however the loop is vectorized), the lanes added in float64.
double run_dot(const float* __restrict a, const float* __restrict b, std::int64_t len) {
  float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::int64_t j = 0;
  for (; j + 8 <= len; j += 8)
    for (int l = 0; l < 8; ++l) lanes[l] += a[j + l] * b[j + l];
  for (; j < len; ++j) lanes[0] += a[j] * b[j];
  double s = 0;
  for (float x : lanes) s += x;
  return s;
}

// Pass 1: the Gram matrix [groups, m, m] in float64.
at::Tensor stock_gram(const StoredSpan& base, const std::vector<StoredSpan>& models, std::int64_t n,
                      std::int64_t group_len, bool tau_given) {
  const std::size_t m = models.size(), k = m * (m + 1) / 2;
  const std::vector<double> sums = sums_by_group(n, group_len, k, [&](std::int64_t off, std::int64_t len, auto&& emit) {
    thread_local std::vector<float> b0, taus;
    thread_local std::vector<double> s;
    b0.resize(kStreamBlock), taus.resize(m * kStreamBlock), s.resize(k);
    widen_stored(base, off, b0.data(), len);
    widen_taus(models, b0.data(), off, len, tau_given, taus.data());
    for_each_run(off, len, group_len, [&](std::int64_t g, std::int64_t j0, std::int64_t j1) {
      std::size_t idx = 0;
      for (std::size_t i = 0; i < m; ++i)
        for (std::size_t c = i; c < m; ++c)
          s[idx++] = run_dot(taus.data() + i * kStreamBlock + j0, taus.data() + c * kStreamBlock + j0, j1 - j0);
      emit(g, s.data());
    });
  });
  const auto groups = static_cast<std::int64_t>(sums.size() / k), mm = static_cast<std::int64_t>(m);
  at::Tensor gram = at::empty({groups, mm, mm}, at::kDouble);
  double* g = gram.data_ptr<double>();
  for (std::int64_t r = 0; r < groups; ++r) {
    std::size_t idx = static_cast<std::size_t>(r) * k;
    for (std::int64_t i = 0; i < mm; ++i)
      for (std::int64_t c = i; c < mm; ++c) g[(r * mm + i) * mm + c] = g[(r * mm + c) * mm + i] = sums[idx++];
  }
  return gram;
}

}  // namespace

StreamStats stock_stream(void* out, c10::ScalarType out_type, const StoredSpan& base,
                         const std::vector<StoredSpan>& models, std::int64_t n, std::int64_t group_len, bool angle_mean,
                         bool tau_given, bool with_stats) {
  TORCH_CHECK(models.size() >= 2, "stock_stream: ", models.size(), " members");
  if (n == 0) return {};
  TORCH_CHECK(group_len > 0 && n % group_len == 0, "stock_stream: groups of ", group_len, " over ", n, " values");
  const at::Tensor ratio = stock_ratio(stock_gram(base, models, n, group_len, tau_given), angle_mean).contiguous();
  const float* t = ratio.data_ptr<float>();
  const auto members = static_cast<float>(models.size());
  return dispatch_out(out, out_type, "stock_stream", [&](auto* o) {
    return stream_blocks(o, base, n, with_stats,
                         [&](const float* __restrict pb, std::int64_t off, std::int64_t len, float* __restrict acc,
                             float* __restrict x, float* __restrict vs) {
                           // model_stock_apply's order: τ₀ + τ₁ + ..., ÷ n, θ₀ + that, mixed by t.
                           for (std::size_t i = 0; i < models.size(); ++i) {
                             float* __restrict dst = i == 0 ? acc : x;
                             widen_stored(models[i], off, dst, len);
                             if (!tau_given)
                               for (std::int64_t j = 0; j < len; ++j) dst[j] = dst[j] - pb[j];
                             if (i > 0)
                               for (std::int64_t j = 0; j < len; ++j) acc[j] = acc[j] + x[j];
                           }
                           for_each_run(off, len, group_len, [&](std::int64_t g, std::int64_t j0, std::int64_t j1) {
                             const float tg = t[g], keep = 1.0f - tg;
                             for (std::int64_t j = j0; j < j1; ++j) vs[j] = (pb[j] + acc[j] / members) * tg + pb[j] * keep;
                           });
                         });
  });
}

}  // namespace ms::merge::kernels
