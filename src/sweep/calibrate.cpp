// sweep --plan --calibrate: what a SLURM user needs for --time. On this node, one rank loads the
// residents as a sweep rank does, merges the plan's costliest config and scores the first items
// of every task (a block), then scales: evaluation by the forwards of the whole packs over those
// of the block (eval_cost.hpp), the merge as measured. Prints seconds per config, the wall time
// for the given ranks and groups, and the sbatch --time to ask for with the drain margin.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "mergesweep/core/error.hpp"
#include "mergesweep/core/exit_codes.hpp"
#include "mergesweep/dist/mpi_comm.hpp"
#include "mergesweep/eval/task_pack.hpp"
#include "mergesweep/model/compute_threads.hpp"
#include "mergesweep/sweep/eval_cost.hpp"
#include "mergesweep/sweep/planner.hpp"
#include "mergesweep/sweep/run.hpp"
#include "mergesweep/sweep/spec.hpp"
#include "mergesweep/sweep/worker.hpp"

namespace ms::sweep {
namespace {

constexpr std::int64_t kBlockItems = 8;    // items per task scored while calibrating (one batch)
constexpr double kDrainMarginS = 300;      // slurm/sweep.sbatch: --signal=B:USR2@300
constexpr double kSafety = 1.25;           // headroom on the estimate (configs differ in cost)

// "D-HH:MM:SS" as sbatch --time takes it, rounded up to the minute.
std::string slurm_time(double seconds) {
  const auto minutes = static_cast<long long>(std::ceil(seconds / 60.0));
  char buf[64];
  std::snprintf(buf, sizeof buf, "%lld-%02lld:%02lld:00", minutes / 1440, minutes / 60 % 24, minutes % 60);
  return buf;
}

// The plan's first merge config: configs run costliest first, so it is the one to time.
const PlannedConfig& costliest_merge(const Plan& plan, const std::string& spec_path) {
  if (plan.configs.size() <= plan.num_baselines) fail(spec_path, "methods", "the plan has no merge to calibrate on");
  return *std::max_element(plan.configs.begin() + static_cast<std::ptrdiff_t>(plan.num_baselines), plan.configs.end(),
                           [](const PlannedConfig& a, const PlannedConfig& b) { return a.cost < b.cost; });
}

}  // namespace

int calibrate_plan(const RunOptions& opts, int* argc, char*** argv) {
  const int ranks = std::max(1, opts.ranks);
  dist::MpiSession mpi(argc, argv);
  if (mpi.world_size() != 1) fail("", "--calibrate", "runs on one process (no mpirun): it times one rank");
  auto world = dist::make_world_comm();
  SweepSpec spec = load_spec(opts.spec_path);
  require_checkpoints_on_disk(spec, "--calibrate");
  const EvalCost full = estimate_eval_cost(read_eval_packs(spec));
  spec.eval.limit = spec.eval.limit > 0 ? std::min(spec.eval.limit, kBlockItems) : kBlockItems;
  const EvalCost block = estimate_eval_cost(read_eval_packs(spec));
  const Plan plan = make_plan(spec);
  const int threads = opts.threads_per_rank > 0 ? opts.threads_per_rank : spec.schedule.threads_per_rank;
  model::apply_thread_split({threads, threads});
  const auto t0 = std::chrono::steady_clock::now();
  Worker worker(spec, *world, 0);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const PlannedConfig& c = costliest_merge(plan, spec.path);
  bool dropped = false;
  const archive::ConfigResult r = worker.run(c, &dropped);
  if (dropped) fail("", "--calibrate", "stopped by a signal");
  const double eval_scale = block.forwards > 0 ? full.forwards / block.forwards : 1.0;
  const double per_config = r.timing.merge_s + r.timing.eval_s * eval_scale + r.timing.probe_s;
  const int g = opts.group_size > 0 ? opts.group_size : spec.schedule.group_size;
  const int groups = std::max(1, ranks / std::max(1, g));
  const double configs = static_cast<double>(plan.configs.size());
  const double wall = load_s + std::ceil(configs / groups) * per_config;
  std::printf("calibration on this node (one rank, %d thread(s)): residents loaded in %.1f s\n", threads, load_s);
  std::printf("  config %016llx (%s, n=%d): merge %.2f s, eval %.2f s on %lld items per task (x%.1f for the whole "
              "packs: %.1f s), probes %.2f s\n",
              static_cast<unsigned long long>(c.id), c.method().c_str(), c.n, r.timing.merge_s, r.timing.eval_s,
              static_cast<long long>(spec.eval.limit), eval_scale, r.timing.eval_s * eval_scale, r.timing.probe_s);
  std::printf("  about %.3g s per config; %zu configs on %d rank(s) in %d group(s) of %d: wall about %.0f s\n", per_config,
              plan.configs.size(), ranks, groups, g, wall);
  std::printf("  sbatch --time=%s  (x%.2f headroom + %.0f s drain margin; a job that runs out drains and is requeued "
              "by slurm/sweep.sbatch, resuming the rest)\n",
              slurm_time(wall * kSafety + kDrainMarginS).c_str(), kSafety, kDrainMarginS);
  if (g > 1)
    std::printf("  measured with one rank holding the whole model; a group of %d shards the merge (faster) and "
                "gathers the model before evaluating it\n", g);
  return kExitOk;
}

}  // namespace ms::sweep
