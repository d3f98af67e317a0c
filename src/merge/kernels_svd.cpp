// The spectral methods: TSV-M, Iso-C, Iso-CTS and Subspace Boosting. All SVDs in float32.
#include <cmath>
#include <functional>

#include "kernels.hpp"

namespace ms::merge::kernels {
namespace {

// Thin SVD: U [m,r], S [r], Vh [r,n].
std::tuple<at::Tensor, at::Tensor, at::Tensor> thin_svd(const at::Tensor& m) {
  return at::linalg_svd(m, /*full_matrices=*/false);
}

// Applies a function of the singular values, A = U diag(σ) Vᵀ -> U diag(g(σ)) Vᵀ, through the
// smaller Gram matrix: with AᵀA = V diag(σ²) Vᵀ (float64 eigh), U diag(g) Vᵀ = A V diag(g/σ) Vᵀ.
// One Gram product and a symmetric eigensolver instead of an SVD (about 15% less time on 2
// cores here). Exact in exact arithmetic; in float64 it matches the float32 SVD form to float32
// tolerance while A is well conditioned, so it is used only when σ_min ≥ 1e-4 σ_max, and the plain
// SVD otherwise (tests/merge/test_properties.cpp compares the two).
bool spectral_via_gram(const at::Tensor& a, const std::function<at::Tensor(const at::Tensor&)>& g, at::Tensor& out) {
  const bool wide = a.size(1) > a.size(0);
  const at::Tensor ad = (wide ? a.t() : a).to(at::kDouble);  // [m, n] with n <= m
  auto [evals, v] = at::linalg_eigh(at::matmul(ad.t(), ad));
  const at::Tensor sigma = evals.clamp_min(0).sqrt().flip(0);  // descending, as the SVD's
  const at::Tensor vs = v.flip(1);
  const double smax = sigma[0].item<double>();
  if (!(smax > 0) || sigma[-1].item<double>() < 1e-4 * smax) return false;
  const at::Tensor scale = g(sigma) / sigma;
  const at::Tensor res = at::matmul(at::matmul(ad, vs * scale.unsqueeze(0)), vs.t());
  out = (wide ? res.t() : res).to(at::kFloat).contiguous();
  return true;
}

at::Tensor sum_of(const std::vector<at::Tensor>& tau) {
  at::Tensor acc = tau.front().clone();
  for (std::size_t i = 1; i < tau.size(); ++i) acc.add_(tau[i]);
  return acc;
}

}  // namespace

at::Tensor polar(const at::Tensor& m) {
  auto [u, s, vh] = thin_svd(m);
  return at::matmul(u, vh);
}

at::Tensor tsv_m_delta(const std::vector<at::Tensor>& tau) {
  const std::int64_t rows = tau[0].size(0), cols = tau[0].size(1);
  const std::int64_t r = std::min(rows, cols);
  const auto t = static_cast<std::int64_t>(tau.size());
  const std::int64_t k = r / t;
  at::Tensor u_cat = at::zeros({rows, r}, tau[0].options());
  at::Tensor s_cat = at::zeros({r}, tau[0].options());
  at::Tensor vh_cat = at::zeros({r, cols}, tau[0].options());
  if (k > 0) {
    for (std::int64_t i = 0; i < t; ++i) {
      auto [u, s, vh] = thin_svd(tau[i]);
      u_cat.narrow(1, i * k, k).copy_(u.narrow(1, 0, k));
      s_cat.narrow(0, i * k, k).copy_(s.narrow(0, 0, k));
      vh_cat.narrow(0, i * k, k).copy_(vh.narrow(0, 0, k));
    }
  }
  // Orthogonalize both factor blocks by their polar factors; empty slots carry s = 0.
  return at::matmul(polar(u_cat) * s_cat.unsqueeze(0), polar(vh_cat));
}

at::Tensor iso_c_delta(const std::vector<at::Tensor>& tau) {
  const at::Tensor sum = sum_of(tau);
  at::Tensor out;
  // Iso-C = mean(σ) · U Vᵀ: every singular value replaced by their mean.
  if (spectral_via_gram(sum, [](const at::Tensor& s) { return at::full_like(s, mean_by_division(s).item<double>()); }, out)) {
    return out;
  }
  return iso_c_delta_svd(sum);
}

at::Tensor iso_c_delta_svd(const at::Tensor& sum) {
  auto [u, s, vh] = thin_svd(sum);
  return at::matmul(u, vh) * mean_by_division(s);
}

at::Tensor iso_cts_delta(const std::vector<at::Tensor>& tau, double common_fraction) {
  const std::int64_t rows = tau[0].size(0), cols = tau[0].size(1);
  const std::int64_t r = std::min(rows, cols);
  const auto t = static_cast<std::int64_t>(tau.size());
  std::int64_t c = static_cast<std::int64_t>(std::floor(common_fraction * static_cast<double>(r)));
  // Task-specific budget rounded (half to even) to a multiple of the task count.
  const double per = static_cast<double>(r - c) / static_cast<double>(t);
  const std::int64_t t_tot = static_cast<std::int64_t>(std::nearbyint(per)) * t;
  c = r - t_tot;
  const std::int64_t p = t_tot / t;
  auto [u, s, vh] = thin_svd(sum_of(tau));
  const at::Tensor uc = u.narrow(1, 0, c), sc = s.narrow(0, 0, c), vhc = vh.narrow(0, 0, c);
  std::vector<at::Tensor> us, ss, vhs;
  if (p > 0) {
    for (const auto& ti : tau) {
      const at::Tensor resid = ti - at::matmul(uc, at::matmul(uc.t(), ti));
      auto [ui, si, vhi] = thin_svd(resid);
      us.push_back(ui.narrow(1, 0, p));
      ss.push_back(si.narrow(0, 0, p));
      vhs.push_back(vhi.narrow(0, 0, p));
    }
  }
  us.push_back(uc);
  ss.push_back(sc);
  vhs.push_back(vhc);
  const at::Tensor u_all = polar(at::cat(us, 1));
  const at::Tensor vh_all = polar(at::cat(vhs, 0));
  const at::Tensor s_mean = mean_by_division(at::cat(ss, 0));
  return at::matmul(u_all, vh_all) * s_mean;
}

// j* = first index where the cumulative share of Σσ reaches β (the last index if none).
std::int64_t boost_index(const at::Tensor& s, double beta) {
  const at::Tensor cum = s.cumsum(0) / s.sum();
  const at::Tensor reached = (cum >= beta).nonzero();
  return reached.numel() > 0 ? reached[0][0].item<std::int64_t>() : s.size(0) - 1;
}

at::Tensor subspace_boost(const at::Tensor& delta, double beta) {
  at::Tensor out;
  const auto lift = [beta](const at::Tensor& s) { return s.clamp_min(s[boost_index(s, beta)].item<double>()); };
  if (spectral_via_gram(delta, lift, out)) return out;
  return subspace_boost_svd(delta, beta);
}

at::Tensor subspace_boost_svd(const at::Tensor& delta, double beta) {
  auto [u, s, vh] = thin_svd(delta);
  if (s.sum().item<float>() == 0.0f) return delta;
  const at::Tensor boosted = s.clamp_min(s[boost_index(s, beta)].item().toFloat());
  return at::matmul(u * boosted.unsqueeze(0), vh);
}

}  // namespace ms::merge::kernels
