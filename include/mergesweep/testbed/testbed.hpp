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
struct FineTuneSpec {
  std::vector<std::string> families;  // the emphasised families (one or two)
  double emphasis = 0.8;              // fraction of each batch drawn from them; the rest from all
  double lr = 1e-3;
  int steps = 0;
};

struct TestbedOptions {
  std::uint64_t seed = 0;
  // Model shape (Llama, untied lm_head).
  int hidden = 64, intermediate = 176, layers = 2, heads = 4, kv_heads = 2;
  int max_positions = 64;
  // Training.
  int batch = 64;
  int base_steps = 300;
  double base_lr = 2e-3;
  double weight_decay = 0.01;
  std::vector<FineTuneSpec> fine_tunes;
  int train_threads = 1;  // ATen threads while training (fixed so results do not depend on the host)
  // Packs.
  int task_items = 160;                      // per family; a multiple of 4 so gold is balanced
  int probe_train = 384, probe_dev = 64, probe_test = 128;
  std::string dtype = "float32";             // float32 | bfloat16 (the weights as written)
  // Progress lines (stderr in the CLI); may be empty.
  std::function<void(const std::string&)> progress;
};

// "default": the embedded family (8 families, 12 fine-tunes); "tiny": a miniature for tests
// (same files, smaller model, fewer steps and items; seconds).
TestbedOptions testbed_preset(const std::string& name);

// Writes OUT/base, OUT/ft-00.., OUT/tasks/<family>.h5, OUT/probes/<property>.h5 and
// OUT/testbed.json under a temporary name, renamed into place at the end. `out_dir` must not exist.
void write_testbed(const std::string& out_dir, const TestbedOptions& options);

}  // namespace ms::testbed
