// Model Stock: interpolate between the base and the average of the models by a ratio derived
// from how aligned the task vectors are.
#include <cmath>

#include "kernels.hpp"

namespace ms::merge::kernels {

at::Tensor model_stock(const at::Tensor& base, const std::vector<at::Tensor>& tau, bool filter_wise, bool angle_mean) {
  const auto n = static_cast<std::int64_t>(tau.size());
  // Rows are the unit of comparison: the whole tensor, or each output row (filter_wise).
  const bool rows = filter_wise && base.dim() >= 2;
  auto view = [&](const at::Tensor& t) { return rows ? t.reshape({t.size(0), -1}) : t.reshape({1, -1}); };
  std::vector<at::Tensor> v;
  for (const auto& t : tau) v.push_back(view(t.contiguous()));
  const std::int64_t r = v[0].size(0);
  // Dot products without a product tensor: BLAS dot per pair (whole tensor) or one batched
  // [r,1,c]x[r,c,1] product per pair (rows). Each norm once, not once per pair.
  auto dot = [&](const at::Tensor& a, const at::Tensor& b) {
    return rows ? at::bmm(a.unsqueeze(1), b.unsqueeze(2)).view({r}) : at::dot(a.view({-1}), b.view({-1})).view({1});
  };
  std::vector<at::Tensor> norms;
  for (const auto& x : v) norms.push_back(dot(x, x).sqrt());
  at::Tensor sum_cos = at::zeros({r}, base.options().dtype(at::kFloat));
  at::Tensor sum_angle = at::zeros_like(sum_cos);
  at::Tensor any_zero = at::zeros({r}, base.options().dtype(at::kBool));
  std::int64_t pairs = 0;
  for (std::int64_t j = 0; j < n; ++j) {
    for (std::int64_t k = j + 1; k < n; ++k) {
      at::Tensor cos = dot(v[j], v[k]) / (norms[j] * norms[k]).clamp_min(1e-6);
      cos = cos.clamp(-1, 1);
      sum_cos += cos;
      sum_angle += cos.acos();
      any_zero = any_zero | (norms[j] == 0) | (norms[k] == 0);
      ++pairs;
    }
  }
  at::Tensor t;
  if (!angle_mean) {
    // Not clamped, as mergekit; at the singularity (denominator ~ 0) keep the base (t = 0).
    const at::Tensor cos = sum_cos / static_cast<double>(pairs);
    const at::Tensor den = cos * (n - 1) + 1;
    const at::Tensor singular = den.abs() < 1e-6;
    t = at::where(singular, at::zeros_like(cos), cos * n / at::where(singular, at::ones_like(den), den));
  } else {
    const at::Tensor cos = (sum_angle / static_cast<double>(pairs)).cos();
    t = cos * n / (cos * (n - 1) + 1 + 1e-8);
    t = at::where(any_zero, at::zeros_like(t), t);
  }
  // θ = t·mean(θᵢ) + (1 − t)·θ₀ = θ₀ + t·mean(τᵢ), accumulated without stacking the models.
  at::Tensor mean_tau = tau[0].clone();
  for (std::int64_t i = 1; i < n; ++i) mean_tau.add_(tau[i]);
  mean_tau.div_(static_cast<double>(n));
  const at::Tensor tt = rows ? t.view({-1, 1}) : t.view({1});
  const at::Tensor mean_theta = base + mean_tau;
  return (view(mean_theta) * tt + view(base) * (1 - tt)).reshape(base.sizes());
}

}  // namespace ms::merge::kernels
