// The spectral methods: TSV-M, Iso-C, Iso-CTS and Subspace Boosting. All SVDs in float32.
#include <cmath>

#include "kernels.hpp"

namespace ms::merge::kernels {
namespace {

// Thin SVD: U [m,r], S [r], Vh [r,n].
std::tuple<at::Tensor, at::Tensor, at::Tensor> thin_svd(const at::Tensor& m) {
  return at::linalg_svd(m, /*full_matrices=*/false);
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
  auto [u, s, vh] = thin_svd(sum_of(tau));
  return at::matmul(u, vh) * s.mean();
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
  const at::Tensor s_mean = at::cat(ss, 0).mean();
  return at::matmul(u_all, vh_all) * s_mean;
}

at::Tensor subspace_boost(const at::Tensor& delta, double beta) {
  auto [u, s, vh] = thin_svd(delta);
  const at::Tensor total = s.sum();
  if (total.item<float>() == 0.0f) return delta;
  const at::Tensor cum = s.cumsum(0) / total;
  const at::Tensor reached = (cum >= beta).nonzero();
  const std::int64_t j = reached.numel() > 0 ? reached[0][0].item<std::int64_t>() : s.size(0) - 1;
  const at::Tensor boosted = s.clamp_min(s[j].item().toFloat());
  return at::matmul(u * boosted.unsqueeze(0), vh);
}

}  // namespace ms::merge::kernels
