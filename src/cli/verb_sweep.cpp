// mergesweep sweep SPEC: a whole merging study (docs/formats.md "Sweep spec", "Archive").
#include <boost/program_options.hpp>
#include <cstdio>
#include <cstdlib>

#include "mergesweep/cli/verbs.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/dist/signals.hpp"
#include "mergesweep/sweep/run.hpp"
#include "options.hpp"

namespace po = boost::program_options;

namespace ms::cli {

int run_sweep(int argc, char** argv) {
  sweep::RunOptions o;
  std::string slice;
  po::options_description opts(
      "usage: mergesweep sweep SPEC [options]\n"
      "       mpirun -np P mergesweep sweep SPEC [--group-size G]      (or srun --mpi=pmix)\n\n"
      "Runs the merging study described by the YAML spec SPEC (format: docs/formats.md, 'Sweep spec'):\n"
      "every planned config (baselines, then methods x parameter points x subset sizes x samples) is\n"
      "merged from resident task vectors, evaluated on the spec's task packs and probes, and appended\n"
      "to the HDF5 archive. Rank 0 plans, hands out configs (slowest first) and writes the archive;\n"
      "ranks form worker groups of G that share one model's tensors. Rerunning the same command\n"
      "resumes: configs already in the archive are skipped; an extended spec runs only what is new.\n\n"
      "exit status: 0 done, 1 error or failed configs, 2 bad command line,\n"
      "             75 stopped by SIGTERM/SIGINT/SIGUSR2 before the end (archive consistent; rerun to resume);\n"
      "             under mpirun send SIGUSR2 to mpirun to drain (Ctrl-C makes mpirun exit 1): docs/errors.md\n\n"
      "options");
  opts.add_options()
      ("help,h", "show this help")
      ("output,o", po::value(&o.output), "archive path (overrides the spec's 'output')")
      ("group-size,g", po::value(&o.group_size), "ranks per worker group (overrides schedule.group_size; default 1)")
      ("threads-per-rank", po::value(&o.threads_per_rank),
       "ATen/BLAS threads per rank (overrides schedule.threads_per_rank; default 1: results are bitwise the same "
       "for any rank count at a fixed value)")
      ("plan", po::bool_switch(&o.plan_only), "print the plan and its size (and how much is already archived); run nothing")
      ("list", po::bool_switch(&o.list), "with --plan: one line per config (id, kind, method, parameters, n, sample, members)")
      ("json", po::bool_switch(&o.json), "with --plan: the plan (configs, memory per rank in bytes) as one JSON document")
      ("calibrate", po::bool_switch(&o.calibrate),
       "with --plan: merge and score one config on this node, then print seconds per config, the wall time and the "
       "sbatch --time to ask for")
      ("ranks", po::value(&o.ranks), "with --calibrate: ranks of the job (default: $SLURM_NTASKS, else 1)")
      ("slice", po::value(&slice), "I/N: run only plan entries whose index mod N == I (array jobs; merge archives after)")
      ("progress-interval", po::value(&o.progress_interval), "seconds between progress lines when stderr is not a terminal")
      ("quiet,q", po::bool_switch(&o.quiet), "no progress and no summary (errors are still printed)");
  po::variables_map vm;
  if (!parse_command_line(argc, argv, opts, {{"spec", 1, po::value(&o.spec_path), "missing SPEC (a sweep spec YAML file)"}}, vm))
    return kExitOk;
  if (!slice.empty()) {
    const auto slash = slice.find('/');
    try {
      if (slash == std::string::npos) throw std::invalid_argument("");
      o.slice_index = std::stoi(slice.substr(0, slash));
      o.slice_count = std::stoi(slice.substr(slash + 1));
    } catch (const std::exception&) {
      throw po::error("--slice must be I/N with 0 <= I < N, got '" + slice + "'");
    }
    if (o.slice_count < 1 || o.slice_index < 0 || o.slice_index >= o.slice_count)
      throw po::error("--slice must be I/N with 0 <= I < N, got '" + slice + "'");
  }
  if (o.calibrate && !o.plan_only) throw po::error("--calibrate goes with --plan");
  if (o.json && (!o.plan_only || o.list || o.calibrate)) throw po::error("--json goes with --plan alone");
  if (!vm.count("ranks") && std::getenv("SLURM_NTASKS")) o.ranks = std::atoi(std::getenv("SLURM_NTASKS"));
  if (o.plan_only) {
    const int status = sweep::print_plan(o);
    return o.calibrate ? sweep::calibrate_plan(o, &argc, &argv) : status;
  }
  return sweep::run_sweep(o, &argc, &argv);
}

}  // namespace ms::cli
