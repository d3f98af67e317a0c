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

#include "counter_rng.hpp"
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
  const auto params = model.named_parameters();
  const at::Device device = params.empty() ? at::Device(at::kCPU) : params.front().second.device();
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
  return out;
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

namespace {

// Mean cross-entropy of rows `idx` (no dropout), summed in double in row order.
double mean_loss(const at::Tensor& features, const std::vector<std::int64_t>& idx, const std::vector<std::int32_t>& y,
                 const at::Tensor& w, const at::Tensor& bias, std::vector<std::int32_t>* pred) {
  at::NoGradGuard no_grad;
  const at::Tensor sel = at::from_blob(const_cast<std::int64_t*>(idx.data()),
                                       {static_cast<std::int64_t>(idx.size())}, at::kLong);
  const at::Tensor logits = at::linear(features.index_select(0, sel), w, bias).to(at::kDouble).contiguous();
  const std::int64_t k = logits.size(1);
  const double* l = logits.data_ptr<double>();
  double total = 0;
  for (std::size_t r = 0; r < idx.size(); ++r) {
    const double* row = l + static_cast<std::int64_t>(r) * k;
    double mx = row[0];
    std::int32_t arg = 0;
    for (std::int64_t c = 1; c < k; ++c) {
      if (row[c] > mx) mx = row[c], arg = static_cast<std::int32_t>(c);
    }
    double z = 0;
    for (std::int64_t c = 0; c < k; ++c) z += std::exp(row[c] - mx);
    total += mx + std::log(z) - row[y[idx[r]]];
    if (pred) pred->push_back(arg);
  }
  return total / static_cast<double>(idx.size());
}

}  // namespace

double train_probe(const at::Tensor& features, const ProbePack& pack, std::int32_t seed, const ProbeOptions& opts) {
  return fit_probe(features, pack, seed, opts).test_macro_f1;
}

ProbeFit fit_probe(const at::Tensor& features_in, const ProbePack& pack, std::int32_t seed, const ProbeOptions& opts) {
  const std::int64_t n = static_cast<std::int64_t>(pack.sentences.size());
  if (features_in.dim() != 2 || features_in.size(0) != n)
    fail(pack.path, "features", "expected [" + std::to_string(n) + ", hidden] pooled features");
  if (opts.batch <= 0 || opts.max_epochs <= 0 || opts.lr <= 0 || opts.dropout < 0 || opts.dropout >= 1 ||
      opts.warmup < 0 || opts.warmup > 1 || opts.patience <= 0)
    fail(pack.path, "probe options", "need batch, max_epochs, lr, patience > 0, dropout in [0, 1), warmup in [0, 1]");
  const at::Tensor features = features_in.to(at::kFloat).cpu().contiguous();
  const std::int64_t hdim = features.size(1);
  const std::int64_t k = static_cast<std::int64_t>(pack.label_names.size());
  std::vector<std::int64_t> train, dev, test;
  for (std::int64_t i = 0; i < n; ++i) {
    (pack.split[i] == Split::kTrain ? train : pack.split[i] == Split::kDev ? dev : test).push_back(i);
  }
  if (train.empty() || dev.empty() || test.empty()) fail(pack.path, "split", "a probe needs train, dev and test sentences");

  // nn.Linear's default initialisation: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
  const float bound = 1.0f / std::sqrt(static_cast<float>(hdim));
  auto init = [&](std::int64_t count, const char* purpose) {
    const CounterRng rng(static_cast<std::uint64_t>(seed), purpose);
    std::vector<float> v(count);
    for (std::int64_t i = 0; i < count; ++i) v[i] = (2.0f * rng.uniform(i) - 1.0f) * bound;
    return at::from_blob(v.data(), {count}, at::kFloat).clone();
  };
  at::Tensor w = init(k * hdim, "probe-weight").reshape({k, hdim}).set_requires_grad(true);
  at::Tensor b = init(k, "probe-bias").set_requires_grad(true);
  at::Tensor m_w = at::zeros_like(w), v_w = at::zeros_like(w), m_b = at::zeros_like(b), v_b = at::zeros_like(b);
  const double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;

  const std::int64_t steps_per_epoch = (static_cast<std::int64_t>(train.size()) + opts.batch - 1) / opts.batch;
  const std::int64_t total_steps = steps_per_epoch * opts.max_epochs;
  const auto warmup_steps = static_cast<std::int64_t>(opts.warmup * static_cast<double>(total_steps));
  // transformers' get_linear_schedule_with_warmup (what Holmes uses): linear rise over the warm-up
  // steps, then linear decay to 0 at the last step; optimizer step s uses factor(s).
  auto factor = [&](std::int64_t s) {
    if (s < warmup_steps) return static_cast<double>(s) / static_cast<double>(std::max<std::int64_t>(1, warmup_steps));
    return std::max(0.0, static_cast<double>(total_steps - s) /
                             static_cast<double>(std::max<std::int64_t>(1, total_steps - warmup_steps)));
  };

  at::Tensor best_w = w.detach().clone(), best_b = b.detach().clone();
  double best_loss = std::numeric_limits<double>::infinity();
  std::int32_t since_best = 0, epochs = 0;
  std::int64_t step = 0;
  std::vector<std::int64_t> order = train;
  const float keep = static_cast<float>(1.0 - opts.dropout);
  for (std::int32_t epoch = 0; epoch < opts.max_epochs; ++epoch) {
    // Fisher-Yates shuffle of the training rows, its draws keyed by (seed, epoch).
    order = train;
    const CounterRng shuf(static_cast<std::uint64_t>(seed), "probe-shuffle", static_cast<std::uint64_t>(epoch));
    for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[shuf.below(i, i)]);
    for (std::int64_t s0 = 0; s0 < static_cast<std::int64_t>(order.size()); s0 += opts.batch, ++step) {
      const std::int64_t s1 = std::min<std::int64_t>(static_cast<std::int64_t>(order.size()), s0 + opts.batch);
      const std::int64_t bsz = s1 - s0;
      at::Tensor sel = at::from_blob(order.data() + s0, {bsz}, at::kLong).clone();
      std::vector<std::int64_t> yv(bsz);
      for (std::int64_t r = 0; r < bsz; ++r) yv[r] = pack.labels[order[s0 + r]];
      at::Tensor y = at::from_blob(yv.data(), {bsz}, at::kLong).clone();
      at::Tensor x = features.index_select(0, sel);
      if (opts.dropout > 0) {
        // Inverted dropout on the input features; mask draws keyed by (seed, step).
        const CounterRng drop(static_cast<std::uint64_t>(seed), "probe-dropout", static_cast<std::uint64_t>(step));
        std::vector<float> mask(bsz * hdim);
        for (std::int64_t i = 0; i < bsz * hdim; ++i) mask[i] = drop.uniform(i) < keep ? 1.0f / keep : 0.0f;
        x = x * at::from_blob(mask.data(), {bsz, hdim}, at::kFloat).clone();
      }
      at::Tensor loss = at::nll_loss(at::log_softmax(at::linear(x, w, b), 1), y);
      loss.backward();
      {
        at::NoGradGuard no_grad;
        const double lr = opts.lr * factor(step);
        const double t = static_cast<double>(step + 1);
        const double c1 = 1.0 - std::pow(beta1, t), c2 = 1.0 - std::pow(beta2, t);
        auto adam = [&](at::Tensor& p, at::Tensor& m, at::Tensor& v) {
          const at::Tensor g = p.grad();
          m.mul_(beta1).add_(g, 1.0 - beta1);
          v.mul_(beta2).addcmul_(g, g, 1.0 - beta2);
          // torch.optim.Adam: p -= lr / c1 * m / (sqrt(v) / sqrt(c2) + eps)
          const at::Tensor denom = (v.sqrt() / std::sqrt(c2)).add_(eps);
          p.addcdiv_(m, denom, -lr / c1);
          p.mutable_grad().zero_();
        };
        adam(w, m_w, v_w);
        adam(b, m_b, v_b);
      }
    }
    ++epochs;
    const double dev_loss = mean_loss(features, dev, pack.labels, w.detach(), b.detach(), nullptr);
    if (dev_loss < best_loss) {
      best_loss = dev_loss;
      best_w = w.detach().clone();
      best_b = b.detach().clone();
      since_best = 0;
    } else if (++since_best >= opts.patience) {
      break;
    }
  }
  std::vector<std::int32_t> pred, gold;
  mean_loss(features, test, pack.labels, best_w, best_b, &pred);
  for (std::int64_t i : test) gold.push_back(pack.labels[i]);
  ProbeFit fit;
  fit.test_macro_f1 = macro_f1(gold, pred);
  fit.best_dev_loss = best_loss;
  fit.epochs = epochs;
  fit.weight = best_w;
  fit.bias = best_b;
  return fit;
}

}  // namespace ms::eval
