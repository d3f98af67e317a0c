#include "mergesweep/merge/model_stats.hpp"

#include <ATen/ATen.h>

#include <cmath>

namespace ms::merge {

std::string tensor_kind(const std::string& name) {
  if (name.find("embed_tokens") != std::string::npos) return "embed";
  if (name.find("lm_head") != std::string::npos) return "lm_head";
  if (name.find("norm") != std::string::npos) return "norm";
  if (name.find("self_attn") != std::string::npos) return "attn";
  if (name.find("mlp") != std::string::npos) return "mlp";
  return "other";
}

ModelStats merge_distance(const std::map<std::string, at::Tensor>& merged, const std::map<std::string, at::Tensor>& base,
                          Reducer& reducer) {
  static const char* kKinds[] = {"embed", "lm_head", "norm", "attn", "mlp", "other"};
  std::vector<double> sq(6, 0.0);
  for (const auto& [name, t] : merged) {
    const double s = (t.to(at::kDouble) - base.at(name).to(at::kDouble)).pow(2).sum().item<double>();
    const std::string kind = tensor_kind(name);
    for (int k = 0; k < 6; ++k) {
      if (kind == kKinds[k]) sq[k] += s;
    }
  }
  reducer.allreduce_sum(sq.data(), sq.size());
  ModelStats st;
  double total = 0;
  for (int k = 0; k < 6; ++k) {
    st.l2_by_kind[kKinds[k]] = std::sqrt(sq[k]);
    total += sq[k];
  }
  st.l2_from_base = std::sqrt(total);
  return st;
}

std::vector<std::vector<double>> task_vector_cosines(const std::vector<const std::map<std::string, at::Tensor>*>& taus,
                                                     Reducer& reducer) {
  const std::size_t n = taus.size();
  std::vector<double> dots(n * n, 0.0);
  for (const auto& [name, _] : *taus.front()) {
    std::vector<at::Tensor> v;
    for (const auto* m : taus) v.push_back(m->at(name).flatten().to(at::kDouble));
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = i; j < n; ++j) dots[i * n + j] += v[i].dot(v[j]).item<double>();
  }
  reducer.allreduce_sum(dots.data(), dots.size());
  std::vector<std::vector<double>> cos(n, std::vector<double>(n, 0.0));
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = i; j < n; ++j) {
      const double d = std::sqrt(dots[i * n + i] * dots[j * n + j]);
      cos[i][j] = cos[j][i] = d > 0 ? dots[i * n + j] / d : 0.0;
    }
  }
  return cos;
}

}  // namespace ms::merge
