// The built-in testbed: a small Llama-architecture base trained in libtorch on a mixture of
// synthetic character-level tasks, then fine-tunes that each emphasise one or two task families,
// written as HF folders with task packs (held-out multiple-choice items per family) and probe
// packs. Deterministic: the same options give the same bytes. Layout and sizes: docs/testbed.md.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace ms::testbed {

// How one fine-tune is trained from the base.
// A fine-tune continues training the base on a mixture of ALL families in which `emphasis` of
// every batch comes from its own families and the rest is uniform, with its own data order
// (a stream keyed by its name), learning rate and length: like the instruction-tuned checkpoints
// a study samples from a hub, their task vectors share a general component (more training on
// the common mixture) and differ in specifics. emphasis 1 makes a narrow specialist.
struct FineTuneSpec {
  std::vector<std::string> families;  // the emphasised families
  double emphasis = 0.8;              // fraction of each batch drawn from them; the rest from all
  double lr = 1e-3;
  int steps = 0;
  double lr_floor = 0.1;              // cosine decay ends at lr * lr_floor (1: constant after warm-up)
  std::string role = "general";       // what it stands for (general, instruct, math, narrow): testbed.json
};

struct TestbedOptions {
  std::uint64_t seed = 0;
  // Model shape (Llama, untied lm_head).
  int hidden = 64, intermediate = 176, layers = 2, heads = 4, kv_heads = 2;
  int max_positions = 64;
  // Training.
  int batch = 64;
  int base_steps = 600;
  double base_lr = 3e-3;
  double weight_decay = 0.01;
  std::vector<FineTuneSpec> fine_tunes;
  int train_threads = 1;  // ATen threads while training (fixed so results do not depend on the host)
  // Fine-tunes trained at the same time, each on its own thread with `train_threads` ATen threads.
  // The bytes do not depend on it (each fine-tune is its own computation); 2 uses both cores.
  int train_workers = 2;
  // Packs.
  int task_items = 160;                      // per family; a multiple of 4 so gold is balanced
  int probe_train = 384, probe_dev = 64, probe_test = 128;
  std::string dtype = "float32";             // float32 | bfloat16 (the weights as written)
  // Progress lines (stderr in the CLI); may be empty.
  std::function<void(const std::string&)> progress;
};

// "default": the embedded family (8 families, 12 fine-tunes: 9 general mixtures, 3 narrow
// high-learning-rate specialists; docs/testbed.md); "tiny": a miniature for tests
// (same files, smaller model, fewer steps and items; seconds).
TestbedOptions testbed_preset(const std::string& name);

// The recipe's version, recorded in testbed.json ("recipe_version"): raised whenever the families,
// the training or the packs change, so a cached testbed of an older recipe is known to be stale
// (scripts/demo.sh retrains it). 1: narrow fine-tunes; 2: mixture fine-tunes and 6 probe packs;
// 3: generation families and their generate_until packs.
int testbed_recipe_version();

// Writes OUT/base, OUT/ft-00.., OUT/tasks/<family>.h5, OUT/probes/<property>.h5 and
// OUT/testbed.json under a temporary name, renamed into place at the end. `out_dir` must not exist.
void write_testbed(const std::string& out_dir, const TestbedOptions& options);

}  // namespace ms::testbed
