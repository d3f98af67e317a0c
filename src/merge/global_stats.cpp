// Whole-model statistics for the original (global-trim) TIES: each member's magnitude threshold
// and the model's majority sign. The threshold is an exact k-th order statistic found by radix
// select over the float bit patterns (monotone for |x|): four passes of 256-bin histograms that a
// Reducer sums across ranks, so a sharded model gets the same threshold as a whole one.
#include <ATen/ATen.h>

#include <array>
#include <cstring>

#include "mergesweep/merge/merge.hpp"

namespace ms::merge {
namespace {

using Hist = std::array<std::int64_t, 256>;

// Histogram of byte `pass` (0 = most significant) of |x|'s bits, among values whose higher bytes
// equal `prefix`.
void histogram(const at::Tensor& t, int pass, std::uint32_t prefix, Hist& h) {
  const at::Tensor c = t.to(at::kCPU).contiguous();  // device tensors: counted on the host
  const float* p = c.data_ptr<float>();
  const int shift = 24 - 8 * pass;
  const std::uint32_t high_mask = pass == 0 ? 0u : ~0u << (32 - 8 * pass);
  for (std::int64_t i = 0, n = c.numel(); i < n; ++i) {
    std::uint32_t bits;
    std::memcpy(&bits, p + i, 4);
    bits &= 0x7FFFFFFFu;  // |x|
    if ((bits & high_mask) == prefix) ++h[(bits >> shift) & 0xFF];
  }
}

}  // namespace

GlobalStats compute_global_stats(const MergeRequest& r, TaskVectorSource& src, Reducer& reducer) {
  GlobalStats g;
  if (r.method->scope_for(r.params) != Scope::WholeModel) return g;
  const std::size_t n = r.members.size();
  std::int64_t total = 0;
  for (const auto& name : src.tensor_names()) total += src.base(name).numel();
  reducer.allreduce_sum(&total, 1);
  for (std::size_t m = 0; m < n; ++m) {
    // Keep the top ⌊density·P⌋: threshold = the (P − keep)-th smallest |τ| (1-based), as the paper's code.
    const auto keep = static_cast<std::int64_t>(r.members[m].density * static_cast<double>(total));
    if (keep >= total) {
      g.trim_threshold.push_back(0.0f);
      continue;
    }
    std::int64_t rank = total - keep - 1;  // 0-based rank of the threshold among all |τ|
    if (rank < 0) rank = 0;
    std::uint32_t prefix = 0;
    for (int pass = 0; pass < 4; ++pass) {
      Hist h{};
      for (const auto& name : src.tensor_names()) histogram(src.tau(m, name), pass, prefix, h);
      reducer.allreduce_sum(h.data(), h.size());
      int b = 0;
      while (b < 255 && rank >= h[b]) rank -= h[b++];  // bounded even if counts disagree
      prefix |= static_cast<std::uint32_t>(b) << (24 - 8 * pass);
    }
    float threshold;
    std::memcpy(&threshold, &prefix, 4);
    g.trim_threshold.push_back(threshold);
  }
  // Majority sign: the sign of Σ over all elements of sign(Σᵢ τ̂ᵢ).
  double sign_sum = 0;
  for (const auto& name : src.tensor_names()) {
    at::Tensor acc;
    for (std::size_t m = 0; m < n; ++m) {
      const at::Tensor t = src.tau(m, name);
      const at::Tensor kept = t * (t.abs() >= g.trim_threshold[m]);
      acc = m == 0 ? kept : acc + kept;
    }
    sign_sum += acc.sign().sum().item<double>();
  }
  reducer.allreduce_sum(&sign_sum, 1);
  g.majority_sign = sign_sum >= 0 ? 1.0 : -1.0;
  return g;
}

}  // namespace ms::merge
