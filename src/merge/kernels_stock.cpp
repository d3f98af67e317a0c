// Model Stock: interpolate between the base and the average of the models by a ratio derived
// from how aligned the task vectors are. In two passes, so that no caller holds whole task
// vectors: the members' Gram matrix summed over the tensor's row blocks, then the interpolation,
// which is elementwise.
#include <cmath>

#include "kernels.hpp"
#include "mergesweep/merge/merge.hpp"

namespace ms::merge::kernels {
namespace {

// Rows are the unit of comparison: the whole tensor, or each output row (filter_wise).
at::Tensor compared_rows(const at::Tensor& t, bool rows) {
  return rows ? t.reshape({t.size(0), -1}) : t.reshape({1, -1});
}

}  // namespace

StockGram::StockGram(const at::Tensor& like, std::size_t members, bool filter_wise)
    : rows_(filter_wise && like.dim() >= 2), n_(static_cast<std::int64_t>(members)) {
  const std::int64_t r = rows_ ? like.size(0) : 1;
  gram_ = at::zeros({r, n_, n_}, at::TensorOptions().dtype(at::kDouble).device(like.device()));
}

void StockGram::add(std::int64_t row0, const std::vector<at::Tensor>& tau) {
  std::vector<at::Tensor> v;
  v.reserve(tau.size());
  for (const auto& t : tau) v.push_back(compared_rows(t.contiguous(), rows_));
  const at::Tensor m = at::stack(v, 1);                            // [r, n, c]
  const at::Tensor g = at::bmm(m, m.transpose(1, 2)).to(at::kDouble);  // float32 products, summed in float64
  if (rows_) gram_.narrow(0, row0, g.size(0)).add_(g);
  else gram_.add_(g);
}

at::Tensor StockGram::ratio(bool angle_mean) const { return stock_ratio(gram_, angle_mean); }

at::Tensor stock_ratio(const at::Tensor& gram_, bool angle_mean) {
  const std::int64_t n_ = gram_.size(1);
  const at::Tensor norms = gram_.diagonal(0, 1, 2).sqrt();  // [r, n]
  at::Tensor sum_cos = at::zeros({gram_.size(0)}, gram_.options());
  at::Tensor sum_angle = at::zeros_like(sum_cos);
  at::Tensor any_zero = at::zeros({gram_.size(0)}, gram_.options().dtype(at::kBool));
  std::int64_t pairs = 0;
  for (std::int64_t j = 0; j < n_; ++j) {
    for (std::int64_t k = j + 1; k < n_; ++k) {
      const at::Tensor nj = norms.select(1, j), nk = norms.select(1, k);
      at::Tensor cos = gram_.select(1, j).select(1, k) / (nj * nk).clamp_min(1e-6);
      cos = cos.clamp(-1, 1);
      sum_cos += cos;
      sum_angle += cos.acos();
      any_zero = any_zero | (nj == 0) | (nk == 0);
      ++pairs;
    }
  }
  const auto n = static_cast<double>(n_);
  at::Tensor t;
  if (!angle_mean) {
    // Not clamped, as mergekit; at the singularity (denominator ~ 0) keep the base (t = 0).
    const at::Tensor cos = div_by(sum_cos, static_cast<double>(pairs));
    const at::Tensor den = cos * (n - 1) + 1;
    const at::Tensor singular = den.abs() < 1e-6;
    t = at::where(singular, at::zeros_like(cos), cos * n / at::where(singular, at::ones_like(den), den));
  } else {
    const at::Tensor cos = div_by(sum_angle, static_cast<double>(pairs)).cos();
    t = cos * n / (cos * (n - 1) + 1 + 1e-8);
    t = at::where(any_zero, at::zeros_like(t), t);
  }
  return t.to(at::kFloat);
}

at::Tensor model_stock_apply(const at::Tensor& base, const std::vector<at::Tensor>& tau, const at::Tensor& t,
                             bool filter_wise) {
  const bool rows = filter_wise && base.dim() >= 2;
  // θ = t·mean(θᵢ) + (1 − t)·θ₀ with mean(θᵢ) = θ₀ + mean(τᵢ), accumulated without stacking.
  at::Tensor mean_tau = tau[0].clone();
  for (std::size_t i = 1; i < tau.size(); ++i) mean_tau.add_(tau[i]);
  mean_tau.div_(at::scalar_tensor(static_cast<double>(tau.size()), mean_tau.options()));  // see div_by
  const at::Tensor tt = rows ? t.view({-1, 1}) : t.view({1});
  const at::Tensor mean_theta = base + mean_tau;
  return (compared_rows(mean_theta, rows) * tt + compared_rows(base, rows) * (1 - tt)).reshape(base.sizes());
}

at::Tensor model_stock(const at::Tensor& base, const std::vector<at::Tensor>& tau, bool filter_wise, bool angle_mean) {
  // The Gram matrix over the same row blocks a blockwise caller uses, so both get the same ratio.
  StockGram gram(base, tau.size(), filter_wise);
  const std::int64_t rows = base.dim() == 0 ? 1 : base.size(0);
  const std::int64_t block = base.dim() == 0 || rows == 0 ? std::max<std::int64_t>(rows, 1)
                                                          : rows_per_block(base.numel() / rows);
  for (std::int64_t r0 = 0; r0 < rows; r0 += block) {
    const std::int64_t len = std::min(block, rows - r0);
    std::vector<at::Tensor> part;
    part.reserve(tau.size());
    for (const auto& t : tau) part.push_back(base.dim() == 0 ? t : t.narrow(0, r0, len));
    gram.add(r0, part);
  }
  return model_stock_apply(base, tau, gram.ratio(angle_mean), filter_wise);
}

}  // namespace ms::merge::kernels
