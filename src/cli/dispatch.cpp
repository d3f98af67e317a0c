// The verb table and the one place that turns errors into the message style and exit status of
// docs/errors.md (main.cpp only calls dispatch()).
#include <boost/program_options/errors.hpp>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "mergesweep/cli/verbs.hpp"
#include "mergesweep/model/compute_threads.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/core/version.hpp"

namespace {

struct Verb {
  const char* name;
  int (*run)(int, char**);
  const char* summary;
  ms::model::Workload workload = ms::model::Workload::Evaluate;  // what its threads are split for
};

const Verb kVerbs[] = {
    {"inspect", ms::cli::run_inspect, "describe a safetensors file or HF model folder and check its integrity"},
    {"merge", ms::cli::run_merge, "merge models from a mergekit-style YAML configuration into a HF folder",
     ms::model::Workload::Merge},
    {"synth", ms::cli::run_synth, "write a synthetic model family (random base + structured fine-tune deltas)"},
    {"testbed", ms::cli::run_testbed, "train the built-in model family (base + 12 fine-tunes, task and probe packs)"},
    {"eval", ms::cli::run_eval,
     "score a model on task packs (lm-eval semantics) and probe its hidden states; compare models (paired)"},
    {"sweep", ms::cli::run_sweep, "run a merging study from a YAML spec (MPI: mpirun -np P mergesweep sweep SPEC)"},
    {"archive", ms::cli::run_archive, "info, verify, export, merge or rank (top) sweep archives; rebuild a config's model"},
    {"report", ms::cli::run_report, "tables and figures of the studies from an archive (python3 -m analysis)"},
};

void print_help() {
  std::printf(
      "mergesweep %s: systematic model-merging studies on MPI/NCCL clusters\n\n"
      "usage: mergesweep <verb> [options]   (mergesweep <verb> --help for a verb's options)\n\n"
      "verbs:\n",
      ms::kVersion);
  for (const auto& v : kVerbs) std::printf("  %-10s %s\n", v.name, v.summary);
  std::printf(
      "\nexit status: 0 success, 1 bad input or failed operation (message on stderr), 2 bad command line\n"
      "docs: README.md, docs/formats.md, docs/errors.md\n");
}

}  // namespace

namespace ms::cli {

int dispatch(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0 ||
      std::strcmp(argv[1], "help") == 0) {
    print_help();
    return argc < 2 ? ms::kExitUsage : ms::kExitOk;
  }
  if (std::strcmp(argv[1], "--version") == 0) {
    std::printf("mergesweep %s (%s)\n", ms::kVersion, ms::kGitRevision);
    return ms::kExitOk;
  }
  for (const auto& v : kVerbs) {
    if (std::strcmp(argv[1], v.name) != 0) continue;
    try {
      ms::model::configure_compute_threads(v.workload);
      return v.run(argc - 1, argv + 1);
    } catch (const ms::Error& e) {
      std::fprintf(stderr, "mergesweep: error: %s\n", e.what());
      return ms::kExitError;
    } catch (const boost::program_options::error& e) {
      std::fprintf(stderr, "mergesweep: error: %s: %s (see mergesweep %s --help)\n", v.name, e.what(), v.name);
      return ms::kExitUsage;
    } catch (const std::bad_alloc&) {
      std::fprintf(stderr, "mergesweep: error: out of memory\n");
      return ms::kExitError;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "mergesweep: error: internal: %s\n", e.what());
      return ms::kExitError;
    }
  }
  std::fprintf(stderr, "mergesweep: error: unknown verb '%s' (see mergesweep --help)\n", argv[1]);
  return ms::kExitUsage;
}

}  // namespace ms::cli
