// Resident task vectors for sweeps: θ₀ and every τᵢ = θᵢ − θ₀ loaded once, in float32, kept in
// memory (possibly only the tensors this rank holds), so that each merge is pure compute.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mergesweep/merge/merge.hpp"

namespace at { class Tensor; }

namespace ms::merge {

class ResidentModels {
 public:
  // Reads `names` (all of the base's tensors when empty) from the base and every checkpoint.
  // Checkpoint k is addressed by Member::index == k in requests.
  ResidentModels(const std::string& base_path, const std::vector<std::string>& checkpoint_paths,
                 std::vector<std::string> names = {});
  ~ResidentModels();
  ResidentModels(ResidentModels&&) noexcept;

  const std::vector<std::string>& tensor_names() const;
  std::size_t num_checkpoints() const;
  const at::Tensor& base(const std::string& name) const;
  const at::Tensor& tau(std::size_t checkpoint, const std::string& name) const;
  std::uint64_t resident_bytes() const;

  // Merges every held tensor into `out` (float32; entries are reused when present with the right
  // shape, so a sweep that keeps `out` between calls does not reallocate the output).
  // Whole-model statistics go through `reducer`.
  void merge(const MergeRequest& r, std::map<std::string, at::Tensor>& out, Reducer& reducer,
             const DareMaskFn* dare_mask = nullptr) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ms::merge
