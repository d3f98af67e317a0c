// `mergesweep sweep`: every rank runs run_sweep(); rank 0 also coordinates and writes the archive.
#pragma once

#include <string>

namespace ms::sweep {

struct RunOptions {
  std::string spec_path;
  std::string output;          // overrides the spec's output when set
  int group_size = 0;          // 0: the spec's schedule.group_size
  int threads_per_rank = 0;    // 0: the spec's schedule.threads_per_rank
  double progress_interval = -1;
  bool quiet = false;
  bool plan_only = false;      // print the plan and its size, run nothing
  bool list = false;           // with plan_only: one line per config
  bool json = false;           // with plan_only: the plan as one JSON document (plan_report.cpp)
  bool calibrate = false;      // with plan_only: time one config on this node (calibrate.cpp)
  int ranks = 1;               // with calibrate: the job's ranks, for its wall time
  int slice_index = 0, slice_count = 1;  // run only plan indices with index % count == index
};

// Returns the process exit status (0 done, 1 failed configs, dist::kExitDrained when stopped by
// a signal before the end). Throws ms::Error for bad input (spec, models, packs, archive).
int run_sweep(const RunOptions& opts, int* argc, char*** argv);
// --plan: prints the plan (no MPI).
int print_plan(const RunOptions& opts);
// --plan --calibrate: merges and scores one config on this node (one process), prints seconds per
// config, the wall time for opts.ranks and the sbatch --time to ask for.
int calibrate_plan(const RunOptions& opts, int* argc, char*** argv);

}  // namespace ms::sweep
