// One merge to run: a method with validated parameters and the members (fine-tuned models) with
// their per-model weight and density. Built by the mergekit importer, the CLI or the sweep planner,
// validated once (validate_request), then run by the streaming or the resident path.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mergesweep/merge/params.hpp"
#include "mergesweep/merge/method.hpp"

namespace ms::merge {

struct Member {
  std::string name;       // path or label, used in messages
  int index = 0;          // global checkpoint index: DARE masks depend on it, not on the subset order
  double weight = 1.0;
  double density = 1.0;
};

struct MergeRequest {
  const Method* method = nullptr;
  Params params;
  std::vector<Member> members;
  // No base model was given (mergekit's base-optional methods): θ₀ is the first member's weights,
  // an anchor for the task vectors only (that member's τ is zero). Methods whose result depends on
  // having a base (nuslerp, multislerp) read it; the sweep always has a base.
  bool base_is_first_member = false;

  // Stable 64-bit hash of (method, canonical params, members by index with weight and density).
  std::uint64_t config_hash() const;
  // "ties(density..., lambda=1, ...)" for logs and output metadata.
  std::string describe() const;
};

// Checks member count against the method, weights finite, densities in (0, 1]. Throws ms::Error
// naming `file` and the field.
void validate_request(const MergeRequest& r, const std::string& file);

}  // namespace ms::merge
