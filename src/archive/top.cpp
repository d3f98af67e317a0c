// `mergesweep archive top`: the archive's configs ranked by one task's metric, with their gain
// over the base.
#include <algorithm>
#include <map>

#include "mergesweep/archive/rebuild.hpp"
#include "mergesweep/core/error.hpp"

namespace ms::archive {

bool lower_is_better(const std::string& metric) {
  return metric.find("perplexity") != std::string::npos || metric == "bits_per_byte";
}

namespace {

// The metric to rank by: the one asked for, else acc, else the task's first in row order.
std::string pick_metric(const std::string& archive, const Contents& c, const TopQuery& q) {
  std::vector<std::string> seen;
  for (const auto& r : c.configs)
    for (const auto& res : r.results)
      if (res.task == q.task && std::find(seen.begin(), seen.end(), res.metric) == seen.end())
        seen.push_back(res.metric);
  if (seen.empty()) {
    std::vector<std::string> tasks;
    for (const auto& r : c.configs)
      for (const auto& res : r.results)
        if (std::find(tasks.begin(), tasks.end(), res.task) == tasks.end()) tasks.push_back(res.task);
    std::string known;
    for (const auto& t : tasks) known += (known.empty() ? "" : ", ") + t;
    fail(archive, "--task", "no scores for task '" + q.task + "'; the archive has: " + (known.empty() ? "none" : known));
  }
  std::string all;
  for (const auto& m : seen) all += (all.empty() ? "" : ", ") + m;
  if (!q.metric.empty()) {
    if (std::find(seen.begin(), seen.end(), q.metric) == seen.end())
      fail(archive, "--metric", "task '" + q.task + "' has no metric '" + q.metric + "'; it has: " + all);
    return q.metric;
  }
  return std::find(seen.begin(), seen.end(), "acc") != seen.end() ? "acc" : seen.front();
}

}  // namespace

TopResult top_configs(const std::string& archive, const TopQuery& q) {
  const Contents c = read(archive);
  TopResult out;
  out.metric = pick_metric(archive, c, q);
  const auto names = model_names(c.checkpoints);
  const auto find = [&](const ConfigResult& r, double& v, double& se) {
    for (const auto& res : r.results)
      if (res.task == q.task && res.metric == out.metric) {
        v = res.value;
        se = res.stderr_;
        return true;
      }
    return false;
  };
  for (const auto& r : c.configs) {
    double se = 0;
    if (r.config.kind == "base") out.has_base = find(r, out.base_value, se);
  }
  const bool lower = lower_is_better(out.metric);
  for (const auto& r : c.configs) {
    const bool wanted = q.method.empty() ? r.config.kind == "merge" : r.config.method == q.method;
    if (!wanted || (q.size > 0 && r.config.n != q.size)) continue;
    TopRow row;
    if (!find(r, row.value, row.stderr_)) continue;
    row.config = r.config;
    for (std::int32_t k : r.config.members) row.member_names.push_back(member_names_text({k}, names));
    row.has_base = out.has_base;
    row.gain = lower ? out.base_value - row.value : row.value - out.base_value;
    out.rows.push_back(std::move(row));
  }
  std::sort(out.rows.begin(), out.rows.end(), [&](const TopRow& a, const TopRow& b) {
    if (a.value != b.value) return lower ? a.value < b.value : a.value > b.value;
    return a.config.id < b.config.id;  // a stable order for equal scores
  });
  if (out.rows.size() > q.count) out.rows.resize(q.count);
  return out;
}

}  // namespace ms::archive
