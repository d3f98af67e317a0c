// RAM's and RAM+'s fused CPU kernels (methods/ram.cpp states the method): the members' τ of a block
// formed from the stored inputs, each entry's count of members that change it, and the merge, in
// the float32 operations of the tensor path in the same order, so bitwise the same.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels.hpp"
#include "kernels_stream.hpp"

namespace ms::merge::kernels {
using namespace stream;

std::vector<RamCounts> ram_counts(const StoredSpan& base, const std::vector<StoredSpan>& models, std::int64_t n,
                                  double epsilon, bool tau_given) {
  const std::size_t m = models.size();
  const auto eps = static_cast<float>(epsilon);
  // Two sums per member (shared, unique), one "group" for the whole tensor; integer-valued doubles.
  const std::vector<double> sums = sums_by_group(std::max<std::int64_t>(n, 1), std::max<std::int64_t>(n, 1), 2 * m,
                                                 [&](std::int64_t off, std::int64_t len, auto&& emit) {
    thread_local std::vector<float> b0, taus;
    thread_local std::vector<double> s;
    b0.resize(kStreamBlock), taus.resize(m * kStreamBlock), s.assign(2 * m, 0.0);
    if (n == 0) return emit(0, s.data());
    widen_stored(base, off, b0.data(), len);
    widen_taus(models, b0.data(), off, len, tau_given, taus.data());
    std::vector<std::int64_t> shared(m, 0), unique(m, 0);
    for (std::int64_t j = 0; j < len; ++j) {
      int c = 0;
      for (std::size_t i = 0; i < m; ++i) c += std::fabs(taus[i * kStreamBlock + j]) > eps;
      for (std::size_t i = 0; i < m; ++i) {
        const bool nz = std::fabs(taus[i * kStreamBlock + j]) > eps;
        shared[i] += nz && c > 1;
        unique[i] += nz && c == 1;
      }
    }
    for (std::size_t i = 0; i < m; ++i) s[2 * i] = static_cast<double>(shared[i]), s[2 * i + 1] = static_cast<double>(unique[i]);
    emit(0, s.data());
  });
  std::vector<RamCounts> out(m);
  for (std::size_t i = 0; i < m; ++i)
    out[i] = {static_cast<std::int64_t>(sums[2 * i]), static_cast<std::int64_t>(sums[2 * i + 1])};
  return out;
}

StreamStats ram_stream(void* out, c10::ScalarType out_type, const StoredSpan& base, const std::vector<StoredSpan>& models,
                       std::int64_t n, double epsilon, const std::vector<float>& boost, bool tau_given, bool with_stats) {
  const std::size_t m = models.size();
  const auto eps = static_cast<float>(epsilon);
  return dispatch_out(out, out_type, "ram_stream", [&](auto* o) {
    return stream_blocks(o, base, n, with_stats,
                         [&](const float* __restrict pb, std::int64_t off, std::int64_t len, float*, float*,
                             float* __restrict vs) {
                           thread_local std::vector<float> taus;
                           taus.resize(m * kStreamBlock);
                           widen_taus(models, pb, off, len, tau_given, taus.data());
                           for (std::int64_t j = 0; j < len; ++j) {
                             int c = 0;
                             for (std::size_t i = 0; i < m; ++i) c += std::fabs(taus[i * kStreamBlock + j]) > eps;
                             // ram_delta's operations: keptᵢ·unique(·boostᵢ) + keptᵢ·overlap / max(count, 1).
                             const float unique = c == 1 ? 1.0f : 0.0f, overlap = c > 1 ? 1.0f : 0.0f;
                             const auto divisor = static_cast<float>(std::max(c, 1));
                             float sum = 0.0f;
                             for (std::size_t i = 0; i < m; ++i) {
                               const float t = taus[i * kStreamBlock + j];
                               const float kept = t * (std::fabs(t) > eps ? 1.0f : 0.0f);
                               float u = kept * unique;
                               if (!boost.empty()) u = u * boost[i];
                               const float term = u + kept * overlap / divisor;
                               sum = i == 0 ? term : sum + term;
                             }
                             vs[j] = pb[j] + sum;
                           }
                         });
  });
}

}  // namespace ms::merge::kernels
