// Linear, SLERP, task arithmetic, original (global-trim) TIES and SCE's variance across members;
// the per-tensor TIES trim and consensus are in kernels_fused.cpp.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>

#include "kernels.hpp"

namespace ms::merge::kernels {

at::Tensor linear(const at::Tensor& base, const std::vector<at::Tensor>& tau, const std::vector<double>& w,
                  bool normalize) {
  // mergekit sums wᵢ θᵢ; θᵢ = θ₀ + τᵢ is exact for bf16/f16 checkpoints (see docs/methods.md).
  at::Tensor acc = at::zeros_like(base);
  double wsum = 0;
  for (std::size_t i = 0; i < tau.size(); ++i) {
    acc.add_((base + tau[i]) * w[i]);
    wsum += w[i];
  }
  if (normalize) acc.div_(at::scalar_tensor(wsum, acc.options()));  // a device scalar: see div_by
  return acc;
}

at::Tensor slerp(const at::Tensor& a, const at::Tensor& b, double t, bool per_row) {
  constexpr double kColinear = 0.9995, kEps = 1e-8;
  const std::int64_t rows = per_row && a.dim() >= 1 ? a.size(0) : 1;
  const at::Tensor a2 = a.reshape({rows, -1}), b2 = b.reshape({rows, -1});
  if (a2.size(1) == 0) return (a * (1 - t) + b * t);
  // The norms and the dot product are summed in float64: the angle of two nearly parallel
  // vectors (a fine-tune and its base) is ill-conditioned in their cosine, and float32 sums over a
  // whole tensor move the coefficients by 1e-5 relative. The interpolation stays float32.
  const auto sum = [](const at::Tensor& x) { return x.sum(1, true, at::kDouble); };
  at::Tensor na = sum(a2 * a2).sqrt(), nb = sum(b2 * b2).sqrt();
  na = at::where(na > kEps, na, at::ones_like(na));
  nb = at::where(nb > kEps, nb, at::ones_like(nb));
  const at::Tensor dot = (sum(a2 * b2) / (na * nb)).clamp(-1, 1);
  const at::Tensor linear = dot.abs() > kColinear;
  const at::Tensor theta = at::where(linear, at::zeros_like(dot), dot).acos();
  const at::Tensor sin_theta = theta.sin();
  const at::Tensor ca = at::where(linear, at::full_like(dot, 1 - t), ((1 - t) * theta).sin() / sin_theta);
  const at::Tensor cb = at::where(linear, at::full_like(dot, t), (t * theta).sin() / sin_theta);
  return (ca.to(at::kFloat) * a2 + cb.to(at::kFloat) * b2).reshape(a.sizes());
}

at::Tensor member_variance(const std::vector<at::Tensor>& flat) {
  const bool cpu_f32 = std::all_of(flat.begin(), flat.end(), [](const at::Tensor& t) {
    return t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous() && t.dim() == 1;
  });
  if (!cpu_f32) return at::var(at::stack(flat, 0), {0}, /*unbiased=*/false, /*keepdim=*/false);
  const std::int64_t n = flat.front().numel();
  std::vector<const float*> p;
  for (const auto& t : flat) {
    TORCH_CHECK(t.numel() == n, "member_variance: members of ", t.numel(), " and ", n, " values");
    p.push_back(t.data_ptr<float>());
  }
  at::Tensor out = at::empty({n}, at::kFloat);
  float* o = out.data_ptr<float>();
  const auto members = static_cast<double>(flat.size());
  at::parallel_for(0, n, 1 << 14, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t j = b; j < e; ++j) {
      double mean = 0, m2 = 0;
      for (std::size_t i = 0; i < p.size(); ++i) {  // WelfordOps::reduce
        const double x = p[i][j], delta = x - mean;
        mean = mean + delta / static_cast<double>(i + 1);
        m2 = m2 + delta * (x - mean);
      }
      o[j] = static_cast<float>(m2 / members);  // WelfordOps::project, correction 0
    }
  });
  return out;
}

Parts weighted_sum(const std::vector<at::Tensor>& tau, const std::vector<double>& w, bool normalize) {
  at::Tensor acc = at::zeros_like(tau.front());
  double wsum = 0;
  for (std::size_t i = 0; i < tau.size(); ++i) {
    acc.add_(tau[i] * w[i]);
    wsum += w[i];
  }
  const double divisor = normalize && wsum != 0 ? wsum : 1.0;
  return {acc, at::scalar_tensor(divisor, acc.options())};
}

at::Tensor ties_original(const std::vector<at::Tensor>& trimmed, double majority_sign) {
  const at::Tensor stacked = at::stack(trimmed);
  at::Tensor gamma = stacked.sum(0).sign();
  gamma = at::where(gamma == 0, at::full({}, majority_sign, gamma.options()), gamma);
  const at::Tensor keep = at::where(gamma > 0, stacked > 0, stacked < 0);
  const at::Tensor count = keep.sum(0).clamp_min(1).to(at::kFloat);
  return (stacked * keep).sum(0) / count;
}

}  // namespace ms::merge::kernels
