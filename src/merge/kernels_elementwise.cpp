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
  if (normalize) acc.div_(wsum);
  return acc;
}

at::Tensor slerp(const at::Tensor& a, const at::Tensor& b, double t) {
  constexpr double kColinear = 0.9995;
  const at::Tensor af = a.flatten(), bf = b.flatten();
  const double na = af.norm().item<double>(), nb = bf.norm().item<double>();
  // Normalized copies only decide the angle; the interpolation applies to the raw tensors.
  double dot = 0;
  if (na > 0 && nb > 0) dot = (af / na).dot(bf / nb).item<double>();
  if (std::abs(dot) > kColinear || na == 0 || nb == 0) return a * (1 - t) + b * t;
  dot = std::max(-1.0, std::min(1.0, dot));
  const double omega = std::acos(dot), so = std::sin(omega);
  return a * (std::sin((1 - t) * omega) / so) + b * (std::sin(t * omega) / so);
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
