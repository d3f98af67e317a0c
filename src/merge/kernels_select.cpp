// Order statistics by radix selection on the float bits: the k-th smallest value of a tensor in
// two histogram passes over it (all threads), where at::kthvalue's quickselect runs serially with
// a branch per comparison (most of breadcrumbs' and Arcee Fusion's time).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstring>
#include <vector>

#include "kernels.hpp"

namespace ms::merge::kernels {
namespace {

// Keys that order like the floats: negative values bit-inverted, positive ones with the sign bit
// set (−0 sorts just before +0; they compare equal as floats, so either is "the" value).
inline std::uint32_t order_key(float x) {
  std::uint32_t b;
  std::memcpy(&b, &x, 4);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
inline float from_key(std::uint32_t k) {
  const std::uint32_t b = (k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k;
  float x;
  std::memcpy(&x, &b, 4);
  return x;
}

// The histogram of 16 bits of the keys (the high half, or the low half among keys whose high half
// is `high`), counted by every thread and added: integer counts, the same whatever the split.
std::vector<std::int64_t> key_histogram(const float* x, std::int64_t n, bool low_half, std::uint32_t high) {
  const int parts = std::max(1, at::get_num_threads());
  std::vector<std::vector<std::int64_t>> hs(static_cast<std::size_t>(parts), std::vector<std::int64_t>(65536, 0));
  at::parallel_for(0, n, 1 << 16, [&](std::int64_t b, std::int64_t e) {
    auto& h = hs[static_cast<std::size_t>(at::get_thread_num()) % hs.size()];
    for (std::int64_t i = b; i < e; ++i) {
      const std::uint32_t key = order_key(x[i]);
      if (!low_half) ++h[key >> 16];
      else if ((key >> 16) == high) ++h[key & 0xFFFFu];
    }
  });
  std::vector<std::int64_t> total(65536, 0);
  for (const auto& h : hs)
    for (std::size_t d = 0; d < total.size(); ++d) total[d] += h[d];
  return total;
}

}  // namespace

float kth_smallest(const at::Tensor& x, std::int64_t k) {
  const std::int64_t n = x.numel();
  TORCH_CHECK(k >= 1 && k <= n, "kth_smallest: k = ", k, " of ", n, " values");
  if (!x.device().is_cpu() || x.scalar_type() != at::kFloat || !x.is_contiguous() || x.isnan().any().item<bool>())
    return std::get<0>(at::kthvalue(x.reshape({-1}), k)).item<float>();  // NaN sorts last there
  const float* p = x.data_ptr<float>();
  std::int64_t rank = k - 1;  // among ascending values
  std::uint32_t high = 0;
  for (const bool low_half : {false, true}) {
    const std::vector<std::int64_t> h = key_histogram(p, n, low_half, high);
    std::uint32_t d = 0;
    while (d < 65535 && rank >= h[d]) rank -= h[d++];
    if (!low_half) high = d;
    else return from_key((high << 16) | d);
  }
  return 0;  // not reached
}

}  // namespace ms::merge::kernels
