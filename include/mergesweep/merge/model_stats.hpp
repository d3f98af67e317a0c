// The statistics the studies report for every merge: ‖θ_merged − θ₀‖₂ overall and per tensor
// kind, and cosine similarity between the members' task vectors. Sums of squares and dot products
// go through a Reducer so a sharded model gives the same numbers as a whole one.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "mergesweep/merge/merge.hpp"

namespace at { class Tensor; }

namespace ms::merge {

// "embed", "lm_head", "attn", "mlp", "norm" or "other", from the HF tensor name.
std::string tensor_kind(const std::string& name);

struct ModelStats {
  double l2_from_base = 0;
  std::map<std::string, double> l2_by_kind;
};

ModelStats merge_distance(const std::map<std::string, at::Tensor>& merged, const std::map<std::string, at::Tensor>& base,
                          Reducer& reducer);

// cos[i][j] between the task vectors of checkpoints `members` (over every tensor held).
std::vector<std::vector<double>> task_vector_cosines(const std::vector<const std::map<std::string, at::Tensor>*>& taus,
                                                     Reducer& reducer);

}  // namespace ms::merge
