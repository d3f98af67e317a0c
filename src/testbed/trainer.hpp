// Training the testbed models: Llama parameters by HF name, initialisation, batches of task
// examples, and a hand-written AdamW loop over ATen autograd. Internal to the testbed module.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "mergesweep/io/hf_config.hpp"
#include "mergesweep/testbed/char_tokenizer.hpp"
#include "mergesweep/testbed/testbed.hpp"

namespace ms::model { class Decoder; }

namespace ms::testbed {

using Params = std::vector<std::pair<std::string, at::Tensor>>;  // HF name -> float32 tensor

std::string llama_config_text(const TestbedOptions& o, std::int64_t vocab);
// Random initialisation: N(0, 0.02) matrices (output projections scaled by 1/sqrt(2 layers)),
// norms at one; every tensor from its own generator keyed by (seed, name).
Params init_params(const io::ModelConfig& cfg, std::uint64_t seed);
Params clone_params(const Params& p);

// A batch of examples: ids [B, T], targets [B, T] (next token), mask [B, T] (1 on the answer).
struct Batch {
  at::Tensor ids, targets, mask;
};

// Draws training batches: each example's family by the mixture weights, prompts of the held-out
// test items never used. A pure function of (seed, purpose, step).
class BatchSource {
 public:
  BatchSource(const CharTokenizer& tok, const std::vector<double>& mixture, std::vector<std::set<std::string>> held_out,
              std::uint64_t seed, std::string purpose);
  Batch batch(int step, int size) const;

 private:
  const CharTokenizer& tok_;
  std::vector<double> cumulative_;
  std::vector<std::set<std::string>> held_out_;
  std::uint64_t seed_;
  std::string purpose_;
};

struct TrainSpec {
  int steps = 0;
  double lr = 1e-3;
  double weight_decay = 0.01;
  double warmup = 0.1;    // fraction of steps with linear warm-up, then cosine decay to lr * lr_floor
  int batch = 64;
  double lr_floor = 0.1;
};

// Trains `params` in place; returns the mean loss of the last 10% of steps.
double train(Params& params, const io::ModelConfig& cfg, const BatchSource& data, const TrainSpec& spec,
             const std::function<void(int step, double loss)>& on_step);

// Logits [B, T, V] of the model for ids [B, T] (no autograd recording when params need none).
at::Tensor model_logits(const Params& params, const io::ModelConfig& cfg, const at::Tensor& ids);

}  // namespace ms::testbed

namespace ms::eval { struct TaskPack; }

namespace ms::testbed {
// Multiple-choice accuracy (acc: argmax of the summed continuation log-likelihood, first on
// ties) by plain full-sequence forwards: the testbed's own check, independent of ms::eval.
double choice_accuracy(const Params& params, const io::ModelConfig& cfg, const eval::TaskPack& pack);
// Greedy generation (argmax, first on ties) by plain full-sequence forwards for every item of a
// generate_until pack, until a stop token id or max_gen_toks: each item's generated ids, the stop
// token excluded. The testbed's own check, independent of ms::eval's KV-cached decoder.
// A decoder over the parameters as they are (float32; autograd sees through it when they require
// grad): the one forward the trainer, the testbed's checks and the engine share.
std::unique_ptr<model::Decoder> decoder_of(const Params& params, const io::ModelConfig& cfg);
// Greedy generations (ids before the stop token) of every item of a generate_until pack, by the
// engine's generation (eval::generate_items).
std::vector<std::vector<std::int32_t>> greedy_generate(const Params& params, const io::ModelConfig& cfg,
                                                       const eval::TaskPack& pack);
}  // namespace ms::testbed
