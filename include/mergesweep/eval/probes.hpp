// Holmes-style linear probes on hidden states: sentences mean-pooled at every requested layer
// (one forward for all layers), a linear classifier per (layer, seed), test macro-F1.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ms::model { class Decoder; }

namespace ms::eval {

enum class Split : std::uint8_t { kTrain = 0, kDev = 1, kTest = 2 };

struct ProbePack {
  std::string name;                                // probe task name
  std::string tokenizer;
  std::int64_t vocab_size = 0;
  std::vector<std::vector<std::int32_t>> sentences; // token ids of each sentence
  std::vector<std::int32_t> labels;                 // class index per sentence
  std::vector<Split> split;
  std::vector<std::string> label_names;             // class names; labels < label_names.size()
  std::string path;
};

ProbePack read_probe_pack(const std::string& path);
void write_probe_pack(const std::string& path, const ProbePack& pack);

struct ProbeOptions {
  double lr = 1e-3;
  std::int64_t batch = 64;
  double dropout = 0.2;
  double warmup = 0.1;      // fraction of steps with linear warm-up
  std::int32_t max_epochs = 20;
  std::int32_t patience = 5;  // early stopping on dev loss, best checkpoint kept
};

// Mean-pooled hidden states: [layers.size(), N, hidden] float32. Layer l is hidden->at(l) of the
// decoder (0 = embeddings, L = final normed output); `layers` empty means all 0..L.
at::Tensor pooled_features(const model::Decoder& model, const ProbePack& pack, const std::vector<int>& layers,
                           std::int64_t batch_tokens = 8192);

// Trains one probe on features [N, hidden] with a seed; returns test macro-F1. A pure function
// of (features, pack labels/split, seed, options): the same on any rank and thread count.
double train_probe(const at::Tensor& features, const ProbePack& pack, std::int32_t seed, const ProbeOptions& opts);

// train_probe with everything it found: the best (lowest dev loss) checkpoint and its scores.
struct ProbeFit {
  double test_macro_f1 = 0;
  double best_dev_loss = 0;
  std::int32_t epochs = 0;       // epochs run (early stopping may end before max_epochs)
  at::Tensor weight, bias;       // the kept checkpoint: [classes, hidden], [classes] float32
};
ProbeFit fit_probe(const at::Tensor& features, const ProbePack& pack, std::int32_t seed, const ProbeOptions& opts);

// Many probes trained as one batched model (a bmm over probes): job j trains on
// features[jobs[j].layer] ([layers, N, hidden], as pooled_features returns) with its seed, and
// keeps its own shuffles, dropout draws, early stopping and result, so each result is fit_probe's
// for that (layer, seed) up to float rounding. Runs on the features' device.
struct ProbeJob {
  std::int64_t layer = 0;  // index into the features' first dimension
  std::int32_t seed = 0;
};
std::vector<ProbeFit> fit_probes(const at::Tensor& features, const ProbePack& pack, const std::vector<ProbeJob>& jobs,
                                 const ProbeOptions& opts);

// Macro-F1 as sklearn's f1_score(average="macro"): mean over the classes present in `gold` or
// `pred` of 2TP / (2TP + FP + FN).
double macro_f1(const std::vector<std::int32_t>& gold, const std::vector<std::int32_t>& pred);

}  // namespace ms::eval
