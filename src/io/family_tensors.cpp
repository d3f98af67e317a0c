#include "mergesweep/io/family_tensors.hpp"

#include <ATen/ATen.h>

#include "mergesweep/core/error.hpp"
#include "mergesweep/io/hf_model.hpp"

namespace ms::io {

FamilyTensors::FamilyTensors(const FamilyReport& report, const HfModel& base,
                             const std::vector<const HfModel*>& checkpoints)
    : report_(report), models_{&base} {
  models_.insert(models_.end(), checkpoints.begin(), checkpoints.end());
}

FamilyTensors::~FamilyTensors() = default;

std::string FamilyTensors::source_name(std::size_t m, const std::string& name) const {
  const std::string src = source_of(*models_.at(m), name);  // family_check decided it; one rule
  if (src.empty()) fail(models_[m]->path(), name, "no head and no input embedding");
  return src;
}

bool FamilyTensors::is_stored(std::size_t m, const std::string& name) const {
  return !(report_.vocab && is_vocab_tensor(name) && report_.vocab->aligns(m));
}

at::Tensor FamilyTensors::tensor(std::size_t m, const std::string& name) const {
  if (is_stored(m, name)) return models_.at(m)->tensor(source_name(m, name));
  const auto key = std::make_pair(m, name);
  auto it = formed_.find(key);
  if (it == formed_.end()) it = formed_.emplace(key, aligned(m, name)).first;
  return it->second;
}

// Row r: the model's own row for the token, else the substitute over every model of the merge
// (vocabulary.hpp): the one model that has it, zeros when none does, the base's row when the base
// has it, else the plain mean of the rows of the models that have it.
at::Tensor FamilyTensors::aligned(std::size_t m, const std::string& name) const {
  const VocabPlan& p = *report_.vocab;
  std::vector<at::Tensor> src(models_.size());
  const auto rows_of = [&](std::size_t j) -> const at::Tensor& {
    if (!src[j].defined()) src[j] = models_[j]->tensor(source_name(j, name)).to(at::kFloat);
    return src[j];
  };
  const std::int64_t hidden = rows_of(m).size(1);
  at::Tensor out = at::zeros({p.rows, hidden}, at::kFloat);
  std::vector<std::int64_t> at_rows, from_rows, missing;  // the own rows in one gather
  for (std::int64_t r = 0; r < p.rows; ++r) {
    const std::int64_t own = p.own[m][static_cast<std::size_t>(r)];
    if (own >= 0) at_rows.push_back(r), from_rows.push_back(own);
    else missing.push_back(r);
  }
  const auto index = [](const std::vector<std::int64_t>& v) {
    return at::from_blob(const_cast<std::int64_t*>(v.data()), {static_cast<std::int64_t>(v.size())}, at::kLong).clone();
  };
  if (!at_rows.empty()) out.index_copy_(0, index(at_rows), rows_of(m).index_select(0, index(from_rows)));
  for (const std::int64_t r : missing) {
    const auto row = static_cast<std::size_t>(r);
    std::vector<std::size_t> holders;  // each model once (the base may also be listed as a member)
    for (std::size_t j = 0; j < models_.size(); ++j) {
      bool again = false;
      for (const auto h : holders) again = again || p.model_paths[h] == p.model_paths[j];
      if (p.own[j][row] >= 0 && !again) holders.push_back(j);
    }
    if (holders.empty()) continue;  // zeros
    if (holders.size() > 1 && p.base_in_merge && p.own[0][row] >= 0) holders = {0};
    at::Tensor sum = at::zeros({hidden}, at::kFloat);
    for (const auto j : holders) sum.add_(rows_of(j)[p.own[j][row]]);
    out[r].copy_(holders.size() == 1 ? sum : sum.div_(static_cast<double>(holders.size())));
  }
  return out;
}

void FamilyTensors::release(const std::string& name) const {
  for (std::size_t m = 0; m < models_.size(); ++m) {
    formed_.erase({m, name});
    const std::string src = source_name(m, name);
    models_[m]->shard_of(src).release(models_[m]->require(src));
  }
}

}  // namespace ms::io
