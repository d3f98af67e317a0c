// Holmes-style probing: mean-pooled hidden states per sentence (all requested layers from one
// forward), then a linear classifier trained with Adam on train, stopped early on dev loss, scored
// by macro-F1 on test.
//
// Determinism: every random draw (initial weights, epoch shuffles, dropout masks) comes from a
// counter-based stream keyed by (seed, purpose, counter), never from a global generator. Sums
// whose order could follow the thread count (pooling, dev loss) are plain loops in a fixed order;
// the matrix products split rows/columns across threads, never the summed dimension, and the
// remaining reductions are far below ATen's parallel grain. A test compares 1 and 2 threads bitwise.
#include "mergesweep/eval/probes.hpp"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>

#include "mergesweep/core/error.hpp"
#include "mergesweep/model/decoder.hpp"

namespace ms::eval {

at::Tensor pooled_features(const model::Decoder& model, const ProbePack& pack, const std::vector<int>& layers,
                           std::int64_t batch_tokens) {
  const auto& cfg = model.config();
  const int num_layers = static_cast<int>(cfg.num_hidden_layers);
  std::vector<int> use = layers;
  if (use.empty()) {
    use.resize(num_layers + 1);
    std::iota(use.begin(), use.end(), 0);
  }
  for (int l : use) {
    if (l < 0 || l > num_layers)
      fail(pack.path, "layers", "layer " + std::to_string(l) + " is outside 0.." + std::to_string(num_layers) +
                                    " (0 = embeddings, " + std::to_string(num_layers) + " = final norm)");
  }
  if (pack.vocab_size > cfg.vocab_size)
    fail(pack.path, "attribute vocab_size",
         "the pack's token ids go up to " + std::to_string(pack.vocab_size) + " but the model has " +
             std::to_string(cfg.vocab_size) + " embeddings (a pack made for another tokenizer?)");
  const std::int64_t max_pos = cfg.max_position_embeddings;
  const std::int64_t n = static_cast<std::int64_t>(pack.sentences.size());
  const std::int64_t h = cfg.hidden_size;
  for (std::int64_t i = 0; i < n; ++i) {
    if (max_pos > 0 && static_cast<std::int64_t>(pack.sentences[i].size()) > max_pos)
      fail(pack.path, "tokens", "sentence " + std::to_string(i) + " has " + std::to_string(pack.sentences[i].size()) +
                                    " tokens, more than the model's max_position_embeddings " + std::to_string(max_pos));
  }
  at::NoGradGuard no_grad;
  const at::Device device = model.device();
  at::Tensor out = at::empty({static_cast<std::int64_t>(use.size()), n, h}, at::kFloat);
  float* o = out.data_ptr<float>();
  const std::int64_t budget = std::max<std::int64_t>(1, batch_tokens);

  std::int64_t s = 0;
  while (s < n) {
    // Consecutive sentences while the padded batch fits the token budget (at least one).
    std::int64_t e = s, width = 0;
    while (e < n) {
      const std::int64_t w = std::max<std::int64_t>(width, static_cast<std::int64_t>(pack.sentences[e].size()));
      if (e > s && w * (e + 1 - s) > budget) break;
      width = w;
      ++e;
    }
    const std::int64_t b = e - s;
    // Right padding (token 0): causal attention never lets a real token see it, and the mean
    // below covers each sentence's own tokens only.
    at::Tensor ids = at::zeros({b, width}, at::kLong);
    auto* p = ids.data_ptr<std::int64_t>();
    for (std::int64_t r = 0; r < b; ++r) {
      const auto& sen = pack.sentences[s + r];
      std::copy(sen.begin(), sen.end(), p + r * width);
    }
    std::vector<at::Tensor> hidden;
    model::ForwardOptions fo;
    fo.hidden = &hidden;
    model.forward(ids.to(device), fo);
    if (static_cast<int>(hidden.size()) != num_layers + 1)
      fail(pack.path, "layers", "the decoder returned " + std::to_string(hidden.size()) + " hidden states, expected " +
                                    std::to_string(num_layers + 1));
    for (std::size_t li = 0; li < use.size(); ++li) {
      // forward() filled `hidden` through fo.hidden (checked above): cppcheck does not follow the pointer.
      // cppcheck-suppress containerOutOfBounds
      const at::Tensor hs = hidden[use[li]].to(at::kFloat).cpu().contiguous();  // [b, width, h]
      const float* x = hs.data_ptr<float>();
      for (std::int64_t r = 0; r < b; ++r) {
        const std::int64_t len = static_cast<std::int64_t>(pack.sentences[s + r].size());
        std::vector<double> acc(h, 0.0);
        for (std::int64_t t = 0; t < len; ++t) {
          const float* row = x + (r * width + t) * h;
          for (std::int64_t j = 0; j < h; ++j) acc[j] += row[j];
        }
        float* dst = o + (static_cast<std::int64_t>(li) * n + s + r) * h;
        for (std::int64_t j = 0; j < h; ++j) dst[j] = static_cast<float>(acc[j] / static_cast<double>(len));
      }
    }
    s = e;
  }
  return out.to(device);  // probes train where the model runs (a no-op on the CPU)
}

double macro_f1(const std::vector<std::int32_t>& gold, const std::vector<std::int32_t>& pred) {
  // As sklearn's f1_score(average="macro"): the mean over the classes present in gold or
  // predictions of 2TP / (2TP + FP + FN).
  std::set<std::int32_t> classes(gold.begin(), gold.end());
  classes.insert(pred.begin(), pred.end());
  if (classes.empty() || gold.size() != pred.size()) return std::nan("");
  double sum = 0;
  for (std::int32_t c : classes) {
    std::int64_t tp = 0, fp = 0, fn = 0;
    for (std::size_t i = 0; i < gold.size(); ++i) {
      tp += gold[i] == c && pred[i] == c;
      fp += gold[i] != c && pred[i] == c;
      fn += gold[i] == c && pred[i] != c;
    }
    sum += 2.0 * static_cast<double>(tp) / static_cast<double>(2 * tp + fp + fn);
  }
  return sum / static_cast<double>(classes.size());
}

double train_probe(const at::Tensor& features, const ProbePack& pack, std::int32_t seed, const ProbeOptions& opts) {
  return fit_probe(features, pack, seed, opts).test_macro_f1;
}

}  // namespace ms::eval
