#include "mergesweep/merge/model_stats.hpp"

#include <ATen/ATen.h>

#include <cmath>

#include "mergesweep/model/arch_table.hpp"

namespace ms::merge {

std::string tensor_kind(const std::string& name) { return model::kind_name(model::tensor_kind(name)); }

ModelStats merge_distance(const std::map<std::string, at::Tensor>& merged, const std::map<std::string, at::Tensor>& base,
                          Reducer& reducer) {
  const auto& kinds = model::all_tensor_kinds();
  std::vector<double> sq(kinds.size(), 0.0);
  for (const auto& [name, t] : merged) {
    const double s = (t.to(at::kDouble) - base.at(name).to(at::kDouble)).pow(2).sum().item<double>();
    sq[static_cast<std::size_t>(model::tensor_kind(name))] += s;
  }
  reducer.allreduce_sum(sq.data(), sq.size());
  ModelStats st;
  double total = 0;
  for (std::size_t k = 0; k < kinds.size(); ++k) {
    st.l2_by_kind[model::kind_name(kinds[k])] = std::sqrt(sq[k]);
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
    v.reserve(taus.size());
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
