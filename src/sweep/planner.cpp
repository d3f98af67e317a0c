#include "mergesweep/sweep/planner.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <unordered_set>

#include "mergesweep/core/error.hpp"
#include "mergesweep/core/hash.hpp"
#include "mergesweep/merge/method.hpp"

namespace ms::sweep {
namespace {

// Counter-based draw: a pure function of its inputs (no generator state to carry around).
std::uint64_t draw(std::uint64_t seed, std::uint64_t n, std::uint64_t sample, std::uint64_t attempt, std::uint64_t j) {
  std::uint64_t h = mix64(seed ^ 0x5eed5eb5e7ULL);
  for (std::uint64_t v : {n, sample, attempt, j}) h = mix64(h ^ (v + 0x9e3779b97f4a7c15ULL));
  return h;
}

void all_combinations(int N, int n, std::vector<std::vector<int>>& out) {
  std::vector<int> cur(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) cur[i] = i + 1;
  for (;;) {
    out.push_back(cur);
    int i = n - 1;
    while (i >= 0 && cur[i] == N - n + i + 1) --i;
    if (i < 0) return;
    ++cur[i];
    for (int j = i + 1; j < n; ++j) cur[j] = cur[j - 1] + 1;
  }
}

}  // namespace

double binomial(int N, int n) {
  if (n < 0 || n > N) return 0;
  double c = 1;
  for (int i = 1; i <= n; ++i) c = c * (N - n + i) / i;
  return c;
}

std::vector<std::vector<int>> draw_subsets(int N, int n, int samples, std::uint64_t seed) {
  std::vector<std::vector<int>> out;
  if (n < 1 || n > N || samples < 1) return out;
  if (static_cast<double>(samples) >= binomial(N, n)) {
    all_combinations(N, n, out);
    return out;
  }
  std::set<std::vector<int>> seen;
  std::vector<int> pool(static_cast<std::size_t>(N));
  for (int s = 0; s < samples; ++s) {
    for (std::uint64_t attempt = 0;; ++attempt) {
      for (int i = 0; i < N; ++i) pool[i] = i + 1;
      // Partial Fisher-Yates: the first n of a random permutation.
      for (int j = 0; j < n; ++j) {
        const auto r = static_cast<int>(draw(seed, static_cast<std::uint64_t>(n), static_cast<std::uint64_t>(s), attempt,
                                             static_cast<std::uint64_t>(j)) %
                                        static_cast<std::uint64_t>(N - j));
        std::swap(pool[j], pool[j + r]);
      }
      std::vector<int> subset(pool.begin(), pool.begin() + n);
      std::sort(subset.begin(), subset.end());
      if (seen.insert(subset).second) {
        out.push_back(std::move(subset));
        break;
      }
    }
  }
  return out;
}

std::string kind_name(ConfigKind k) {
  switch (k) {
    case ConfigKind::Base: return "base";
    case ConfigKind::Single: return "single";
    default: return "merge";
  }
}

archive::ConfigRecord config_record(const PlannedConfig& c) {
  archive::ConfigRecord r;
  r.id = c.id;
  r.kind = kind_name(c.kind);
  r.method = c.method();
  r.params = c.params();
  r.n = c.n;
  r.sample = c.sample;
  r.members.assign(c.members.begin(), c.members.end());
  return r;
}

std::uint64_t base_config_id() { return stable_hash("mergesweep/base"); }
std::uint64_t single_config_id(int checkpoint) {
  return stable_hash("mergesweep/single/" + std::to_string(checkpoint));
}

namespace {
std::uint64_t point_hash(const MethodPoint& p) {
  return stable_hash(p.method->name + "(" + p.canonical + ")|weight=" + merge::format_number(p.weight) +
                            "|density=" + merge::format_number(p.density));
}
std::uint64_t config_id(std::uint64_t point, const std::vector<int>& members) {
  std::uint64_t mask = 0;
  for (int k : members) mask |= std::uint64_t{1} << (k - 1);
  return mix64(point ^ mix64(mask ^ 0x6d65726765737765ULL));
}
}  // namespace

std::uint64_t merge_config_id(const MethodPoint& p, const std::vector<int>& members) {
  return config_id(point_hash(p), members);
}

std::string PlannedConfig::method() const {
  return kind == ConfigKind::Merge ? point->method->name : kind == ConfigKind::Single ? "none" : "";
}
// The method's canonical parameters plus the per-member weight and density when the method uses
// them (the archive's `params` column: two TIES grids differing only in density stay apart).
std::string PlannedConfig::params() const {
  if (kind != ConfigKind::Merge) return "";
  std::string s = point->canonical;
  if (point->method->uses_density) s += ",density=" + merge::format_number(point->density);
  if (point->method->uses_weight) s += ",weight=" + merge::format_number(point->weight);
  return s;
}

merge::MergeRequest PlannedConfig::request(const SweepSpec& spec) const {
  merge::MergeRequest r;
  r.method = point->method;
  r.params = point->params;
  for (int k : members) {
    merge::Member m;
    m.name = spec.checkpoints[static_cast<std::size_t>(k - 1)];
    m.index = k - 1;
    m.weight = point->weight;
    m.density = point->density;
    r.members.push_back(std::move(m));
  }
  return r;
}

Plan make_plan(const SweepSpec& spec) {
  Plan plan;
  const int N = static_cast<int>(spec.checkpoints.size());
  PlannedConfig base;
  base.id = base_config_id();
  base.kind = ConfigKind::Base;
  plan.configs.push_back(base);
  for (int k = 1; k <= N; ++k) {
    PlannedConfig c;
    c.id = single_config_id(k);
    c.kind = ConfigKind::Single;
    c.members = {k};
    c.n = 1;
    plan.configs.push_back(c);
  }
  plan.num_baselines = plan.configs.size();
  // Subsets per size are drawn once and shared by every method point.
  std::map<int, std::vector<std::vector<int>>> subsets;
  for (const auto& p : spec.methods)
    for (int n : p.sizes)
      if (!subsets.count(n)) subsets[n] = draw_subsets(N, n, spec.samples, spec.seed);
  plan.configs.reserve(plan.configs.size() + spec.methods.size() * spec.sizes.size() * static_cast<std::size_t>(spec.samples));
  std::unordered_set<std::uint64_t> ids;
  ids.reserve(plan.configs.capacity() * 2);
  for (const auto& c : plan.configs) ids.insert(c.id);
  for (const auto& p : spec.methods) {
    const double mc = p.method->plan_cost;
    const std::uint64_t ph = point_hash(p);
    for (int n : p.sizes) {
      const auto& subs = subsets[n];
      for (std::size_t s = 0; s < subs.size(); ++s) {
        PlannedConfig c;
        c.kind = ConfigKind::Merge;
        c.n = n;
        c.sample = static_cast<int>(s);
        c.members = subs[s];
        c.point = &p;
        c.id = config_id(ph, c.members);
        c.cost = mc * n;
        // The same point listed twice in a spec (or two grids overlapping) runs once.
        if (!ids.insert(c.id).second) continue;
        plan.configs.push_back(std::move(c));
      }
    }
  }
  return plan;
}

}  // namespace ms::sweep
