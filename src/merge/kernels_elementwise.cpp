// Linear, SLERP, task arithmetic and original (global-trim) TIES; the per-tensor TIES trim and
// consensus are in kernels_fused.cpp.
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
