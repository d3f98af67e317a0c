// The tensors each model of a checked family contributes to a merge (family_check.hpp decided
// what they are): a view of the file in its stored dtype where the model's tensor is the merged
// tensor's, its input embedding for a tied head, or float32 rows aligned by token string when the
// family's vocabularies differ (vocabulary.hpp: own row, else the substitute row). Every merge
// path (the streaming merge, the resident sweep) reads its inputs through this one class.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "mergesweep/io/family_check.hpp"

namespace at {
class Tensor;
}

namespace ms::io {

class HfModel;

class FamilyTensors {
 public:
  // Keeps references: the report and the models must outlive this object.
  FamilyTensors(const FamilyReport& report, const HfModel& base, const std::vector<const HfModel*>& checkpoints);
  ~FamilyTensors();
  FamilyTensors(const FamilyTensors&) = delete;
  FamilyTensors& operator=(const FamilyTensors&) = delete;

  std::size_t num_models() const { return models_.size(); }  // the base and the checkpoints
  // Model m's (0 = the base, k + 1 = checkpoint k) values of merged tensor `name`, shaped as the
  // merged tensor. Aligned rows are formed once per tensor and kept until release(name).
  at::Tensor tensor(std::size_t m, const std::string& name) const;
  // The model's own tensor this reads (the embedding for a tied head), for messages and scans.
  std::string source_name(std::size_t m, const std::string& name) const;
  // Whether tensor(m, name) is the file's bytes (false: float32 rows aligned by token).
  bool is_stored(std::size_t m, const std::string& name) const;
  // Drops what tensor() formed for `name` and the mapped pages of its sources.
  void release(const std::string& name) const;

 private:
  at::Tensor aligned(std::size_t m, const std::string& name) const;
  const FamilyReport& report_;
  std::vector<const HfModel*> models_;
  mutable std::map<std::pair<std::size_t, std::string>, at::Tensor> formed_;
};

}  // namespace ms::io
