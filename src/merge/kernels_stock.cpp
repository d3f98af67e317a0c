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
  for (const auto& t : tau) v.push_back(view(t));
  at::Tensor sum_cos = at::zeros({v[0].size(0)}, base.options().dtype(at::kFloat));
  at::Tensor sum_angle = at::zeros_like(sum_cos);
  at::Tensor any_zero = at::zeros({v[0].size(0)}, base.options().dtype(at::kBool));
  std::int64_t pairs = 0;
  for (std::int64_t j = 0; j < n; ++j) {
    for (std::int64_t k = j + 1; k < n; ++k) {
      const at::Tensor nj = v[j].norm(2, {1}), nk = v[k].norm(2, {1});
      at::Tensor cos = (v[j] * v[k]).sum(1) / (nj * nk).clamp_min(1e-6);
      cos = cos.clamp(-1, 1);
      sum_cos += cos;
      sum_angle += cos.acos();
      any_zero = any_zero | (nj == 0) | (nk == 0);
      ++pairs;
    }
  }
  at::Tensor t;
  if (!angle_mean) {
    const at::Tensor cos = sum_cos / static_cast<double>(pairs);
    // Not clamped, as mergekit; at the singularity (denominator ~ 0) keep the base (t = 0).
    const at::Tensor den = cos * (n - 1) + 1;
    const at::Tensor singular = den.abs() < 1e-6;
    t = at::where(singular, at::zeros_like(cos), cos * n / at::where(singular, at::ones_like(den), den));
  } else {
    const at::Tensor cos = (sum_angle / static_cast<double>(pairs)).cos();
    t = cos * n / (cos * (n - 1) + 1 + 1e-8);
    t = at::where(any_zero, at::zeros_like(t), t);
  }
  at::Tensor mean_tau = at::stack(tau).mean(0);
  const at::Tensor tt = rows ? t.view({-1, 1}) : t.view({1});
  // θ = t·mean(θᵢ) + (1 − t)·θ₀ = θ₀ + t·mean(τᵢ)
  at::Tensor mean_theta = base + mean_tau;
  return (view(mean_theta) * tt + view(base) * (1 - tt)).reshape(base.sizes());
}

}  // namespace ms::merge::kernels
