// Coordinator + archive throughput with trivially fast work, and planner speed.
//   mpirun -np 2 bench_sweep_coordinator [OUT.h5] [configs_per_point]
// Every rank runs the real work loop and rank 0 the real coordinator and archive writer; the
// "work" returns a synthetic result at once (32 result rows, 1 stat, 8 probe rows per config), so
// the figure is what coordination and archiving alone sustain. Baseline in the same run: the
// archive writer alone appending the same results from one process (no MPI, no scheduling).
#include <ATen/Parallel.h>
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "mergesweep/archive/archive.hpp"
#include "mergesweep/dist/mpi_comm.hpp"
#include "mergesweep/sweep/coordinator.hpp"
#include "mergesweep/sweep/planner.hpp"
#include "mergesweep/sweep/spec.hpp"

using namespace ms;
using Clock = std::chrono::steady_clock;

namespace {

std::string spec_text(int samples) {
  std::string s = "name: bench\nbase: b\ncheckpoints: [";
  for (int k = 0; k < 12; ++k) s += (k ? ", c" : "c") + std::to_string(k);
  s += "]\nsubsets: {sizes: [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], samples: " + std::to_string(samples) +
       ", seed: 1}\nmethods:\n  - {method: task_arithmetic, lambda: [0.3, 0.5, 0.7, 1.0]}\n"
       "  - {method: ties, density: [0.1, 0.2], lambda: [0.5, 1.0]}\n  - {method: model_stock}\n"
       "  - {method: tsv_m}\n  - {method: iso_c}\n  - {method: task_arithmetic_sb, beta: 0.2}\n"
       "output: out.h5\n";
  return s;
}

archive::ConfigResult fake(const sweep::PlannedConfig& c) {
  archive::ConfigResult r;
  r.config = {c.id, sweep::kind_name(c.kind), c.method(), c.params(), c.n, c.sample,
              std::vector<std::int32_t>(c.members.begin(), c.members.end())};
  for (int t = 0; t < 8; ++t)
    for (const char* m : {"acc", "acc_norm", "acc_bytes", "exact_match"})
      r.results.push_back({c.id, "task" + std::to_string(t), m, 0.5, 0.01, 100});
  archive::ModelStatRecord st;
  st.config_id = c.id;
  st.l2_from_base = 1;
  st.l2_by_kind = {{"attn", 0.5}, {"mlp", 0.5}, {"embed", 0}, {"lm_head", 0}, {"norm", 0}, {"other", 0}};
  r.stats.push_back(st);
  for (int l = 0; l < 8; ++l) r.probes.push_back({c.id, "probe", l, 0.9, 0.01, 5});
  r.timing = {c.id, 0, 0, 0, 0, 0};
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  dist::MpiSession mpi(&argc, &argv);
  at::set_num_threads(1);
  const std::string out = argc > 1 ? argv[1] : "/tmp/bench_coordinator.h5";
  const int samples = argc > 2 ? std::atoi(argv[2]) : 400;
  const std::string text = spec_text(samples);
  const sweep::SweepSpec spec = sweep::parse_spec(text, "bench.yaml");

  // Planner speed (every rank plans; rank 0 reports).
  const auto p0 = Clock::now();
  const sweep::Plan plan = sweep::make_plan(spec);
  const double plan_s = std::chrono::duration<double>(Clock::now() - p0).count();

  auto world = dist::make_mpi_comm(MPI_COMM_WORLD);
  dist::Groups groups = dist::split_groups(1);
  auto gcomm = dist::make_mpi_comm(groups.comm);
  archive::Provenance prov;
  prov.spec_text = text;
  prov.plan_hash = "bench";
  prov.ranks = mpi.world_size();
  std::unique_ptr<archive::Writer> writer;
  std::unique_ptr<sweep::Coordinator> coord;
  std::vector<std::size_t> todo(plan.configs.size());
  for (std::size_t i = 0; i < todo.size(); ++i) todo[i] = i;
  if (mpi.world_rank() == 0) {
    std::filesystem::remove(out);
    writer = archive::Writer::open(out, prov, {}, {});
    sweep::Schedule sched;
    coord = std::make_unique<sweep::Coordinator>(plan, todo, *writer, sched, groups.num_groups, groups.group_size,
                                                  sweep::Progress::Mode::Quiet, 0);
    coord->start();
  }
  world->barrier();
  const auto t0 = Clock::now();
  sweep::work_loop(coord.get(), *gcomm, true, mpi.world_rank(), /*beat_interval_s=*/1.0,
                   [&](std::int64_t idx, bool*) { return fake(plan.configs[static_cast<std::size_t>(idx)]); });
  if (mpi.world_rank() == 0) {
    const auto st = coord->finish();
    writer->close();
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    const double rows = static_cast<double>(st.run) * (32 + 1 + 8 + 1 + 1);
    // Baseline: the writer alone, same results, batches of 4096 configs.
    std::filesystem::remove(out + ".base.h5");
    auto w2 = archive::Writer::open(out + ".base.h5", prov, {}, {});
    const auto b0 = Clock::now();
    std::vector<archive::ConfigResult> batch;
    for (const auto& c : plan.configs) {
      batch.push_back(fake(c));
      if (batch.size() == 4096) {
        w2->append(batch);
        batch.clear();
      }
    }
    w2->append(batch);
    w2->close();
    const double bs = std::chrono::duration<double>(Clock::now() - b0).count();
    std::printf("planner: %zu configs in %.3f s = %.2f M configs/s (goal >= 1 M/s)\n", plan.configs.size(), plan_s,
                static_cast<double>(plan.configs.size()) / plan_s / 1e6);
    std::printf("coordinator + archive, %d ranks, trivial work: %zu configs, %.0f rows in %.2f s = %.0f rows/s, %.0f configs/s "
                "(goal >= 10000 rows/s)\n", mpi.world_size(), st.run, rows, s, rows / s, static_cast<double>(st.run) / s);
    std::printf("baseline, archive writer alone: %.0f rows/s; coordinator/baseline ratio %.2f\n", rows / bs, (rows / s) / (rows / bs));
    std::filesystem::remove(out + ".base.h5");
  }
  dist::free_groups(groups);
  return 0;
}
