// The planner: the study's configurations as a pure function of the spec. For each subset size n,
// `samples` distinct subsets drawn from (seed, n, sample index), capped at C(N, n); the same
// subsets for every method and parameter point (paired comparison); the base and each single
// checkpoint once. Config ids are stable 64-bit hashes of (method, canonical parameters, sorted
// subset), so a resumed or extended spec re-runs nothing already in the archive.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mergesweep/archive/archive.hpp"
#include "mergesweep/merge/request.hpp"
#include "mergesweep/sweep/spec.hpp"

namespace ms::sweep {

enum class ConfigKind { Base, Single, Merge };

struct PlannedConfig {
  std::uint64_t id = 0;
  ConfigKind kind = ConfigKind::Merge;
  const MethodPoint* point = nullptr;  // Merge only (points into the spec the plan was made from)
  std::vector<int> members;         // sorted checkpoint numbers, 1-based (Single: one)
  int n = 0;                        // subset size (0 base, 1 single)
  int sample = 0;
  double cost = 1;                  // relative cost estimate, for scheduling slow configs first

  std::string method() const;       // registry name; "" for base, "none" for a single checkpoint
  std::string params() const;       // canonical parameters ("" unless Merge)
  // The merge to run: members indexed 0..N-1 (checkpoint k-1) with the point's weight/density.
  merge::MergeRequest request(const SweepSpec& spec) const;
};

struct Plan {
  std::vector<PlannedConfig> configs;  // baselines first, then methods x points x sizes x samples
  std::size_t num_baselines = 0;
};

// `samples` distinct sorted subsets of {1..N} of size n (all C(N, n) in lexicographic order when
// samples >= C(N, n)). Sample s is a function of (seed, n, s) and the samples before it.
std::vector<std::vector<int>> draw_subsets(int N, int n, int samples, std::uint64_t seed);
double binomial(int N, int n);

Plan make_plan(const SweepSpec& spec);

std::string kind_name(ConfigKind k);
// The config's /configs row (also the first columns of its /failures rows).
archive::ConfigRecord config_record(const PlannedConfig& c);
std::uint64_t base_config_id();
std::uint64_t single_config_id(int checkpoint);
// Stable id of a merge: (method, canonical parameters, member weight and density, sorted subset).
std::uint64_t merge_config_id(const MethodPoint& p, const std::vector<int>& members);

}  // namespace ms::sweep
