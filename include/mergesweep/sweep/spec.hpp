// The sweep spec (YAML, docs/formats.md "Sweep spec"): what to merge, how, and how to evaluate.
// load_spec validates everything before any work starts: unknown keys (with line numbers),
// sizes against the checkpoint count and the method, parameters through the method registry,
// missing files, checkpoints whose tensors differ from the base.
#pragma once

#include "mergesweep/io/vocabulary.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "mergesweep/merge/request.hpp"

namespace ms::sweep {

// One point of a method's parameter grid: validated parameters plus the per-member weight and
// density the method uses (the spec writes them once for every member).
struct MethodPoint {
  const merge::Method* method = nullptr;
  merge::Params params;
  std::string canonical;   // params.canonical(), computed once
  double weight = 1.0;
  double density = 1.0;
  std::vector<int> sizes;  // subset sizes for this method (the spec's, or the entry's own)
  int line = 0;            // spec line of the method entry
};

struct EvalSpec {
  std::vector<std::string> tasks;   // task pack files (globs expanded, sorted)
  std::vector<std::string> probes;  // probe pack files
  std::vector<int> layers;          // probe layers; empty = all
  int probe_seeds = 5;
  std::string dtype = "float32";    // compute dtype of the forward
  std::int64_t batch_tokens = 8192;
  std::int64_t max_length = 0;      // 0: the model's max_position_embeddings
  std::int64_t limit = 0;           // items per task pack (0: all)
};

struct Schedule {
  int group_size = 1;
  int threads_per_rank = 1;         // ATen/BLAS threads per rank (results depend on it: keep fixed)
  double progress_interval = 10;    // seconds between progress lines when stderr is not a terminal
  double batch_seconds = 1;         // the archive is committed at least this often while results arrive
  double peer_timeout = 3600;       // a group whose progress stops this long ends the job (exit 75)
  std::string comm = "auto";        // group collectives: auto (nccl when the device is cuda) | mpi | nccl
  std::string device = "auto";      // auto | cpu | cuda (auto: cuda when a GPU is visible)
  std::uint64_t memory_per_rank = 0;  // bytes a rank may use; 0: the device's (GPU) or the cgroup/physical limit
};

struct SweepSpec {
  std::string path;                 // the spec file
  std::string text;                 // its contents
  std::string name;
  std::string base;                 // resolved paths (relative ones are relative to the spec's folder)
  std::vector<std::string> checkpoints;
  // Each checkpoint's short name, unique: the entry's `name:`, else its folder's name (a hub
  // model's repository name, an adapter's folder for model+adapter). Shown wherever results are read.
  std::vector<std::string> checkpoint_names;
  // `checkpoints: {count: K}`: a shape-only spec. K checkpoints shaped and stored like the base
  // (whose folder may hold config.json alone) that are not on disk: `sweep --plan` sizes the study
  // from config.json (memory_plan.hpp), and a sweep refuses it. `checkpoints` repeats the base.
  bool shape_only = false;
  std::vector<int> sizes;
  int samples = 1;
  std::uint64_t seed = 0;
  std::vector<MethodPoint> methods; // grids expanded
  EvalSpec eval;
  std::string output;
  Schedule schedule;
  // Checkpoints whose vocabulary differs from the base's: "base" aligns their embedding and head
  // rows to the base's tokens by token string (the merged model keeps the base's shape and the
  // evaluation the base's tokenizer); "exact" refuses them, naming both vocabularies.
  std::string vocabulary = "base";
  io::VocabChoice vocab_choice() const;
  // "checkpoints[k] (NAME)": checkpoint k (0-based, spec order after globs) in error messages.
  std::string checkpoint_field(std::size_t k) const;
};

// Parses and validates the text (no file checks): for tests and --plan of specs in memory.
SweepSpec parse_spec(const std::string& text, const std::string& path);
// parse_spec, then file checks: base and checkpoints are model folders whose tensors match,
// packs exist.
SweepSpec load_spec(const std::string& path);
// Refuses a shape-only spec for work that needs the checkpoints (`what`: "a sweep", ...).
void require_checkpoints_on_disk(const SweepSpec& spec, const std::string& what);

}  // namespace ms::sweep
