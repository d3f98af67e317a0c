// Probes: pooled features against a per-sentence forward computed here; macro-F1 by hand; a
// linearly separable property probes to ~1 and shuffled labels to ~chance; training is a pure
// function of its inputs and seed (bitwise the same with 1 or 2 threads).
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "common/test_util.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/eval/probes.hpp"
#include "mergesweep/model/decoder.hpp"

namespace ms::eval {
namespace {

struct Lcg {
  std::uint64_t s;
  double uniform() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<double>(s >> 11) / 9007199254740992.0;
  }
  double normal() {  // Box-Muller
    const double u = uniform() + 1e-12, v = uniform();
    return std::sqrt(-2.0 * std::log(u)) * std::cos(6.283185307179586 * v);
  }
};

TEST(MacroF1, HandComputed) {
  // Class 0: TP 2, FP 1, FN 0 -> 4/5. Class 1: TP 1, FP 0, FN 2 -> 2/4. Class 2 only predicted:
  // TP 0, FP 1 -> 0. Mean over the 3 classes.
  const std::vector<std::int32_t> gold = {0, 0, 1, 1, 1};
  const std::vector<std::int32_t> pred = {0, 0, 1, 0, 2};
  EXPECT_NEAR(macro_f1(gold, pred), (0.8 + 0.5 + 0.0) / 3.0, 1e-15);
  EXPECT_EQ(macro_f1({1, 0, 1}, {1, 0, 1}), 1.0);
}

// N points in `dim` dimensions; label 1 when x.u > 0, pushed `margin` away from the boundary.
// Split 60/20/20 train/dev/test.
std::pair<at::Tensor, ProbePack> separable(int n, int dim, double margin, std::uint64_t seed) {
  Lcg g{seed};
  std::vector<double> u(dim);
  for (auto& x : u) x = g.normal();
  double norm = 0;
  for (double x : u) norm += x * x;
  for (auto& x : u) x /= std::sqrt(norm);
  std::vector<float> f(static_cast<std::size_t>(n) * dim);
  ProbePack p;
  p.label_names = {"no", "yes"};
  p.vocab_size = 10;
  for (int i = 0; i < n; ++i) {
    std::vector<double> x(dim);
    double dot = 0;
    for (int j = 0; j < dim; ++j) dot += (x[j] = g.normal()) * u[j];
    const int label = dot > 0 ? 1 : 0;
    for (int j = 0; j < dim; ++j) f[i * dim + j] = static_cast<float>(x[j] + (label ? margin : -margin) * u[j]);
    p.labels.push_back(label);
    p.split.push_back(i % 5 < 3 ? Split::kTrain : i % 5 == 3 ? Split::kDev : Split::kTest);
    p.sentences.push_back({1});
  }
  return {at::from_blob(f.data(), {n, dim}, at::kFloat).clone(), p};
}

TEST(Probe, SeparablePropertyGivesMacroF1NearOne) {
  auto [f, p] = separable(3000, 32, 1.0, 1);
  const ProbeFit fit = fit_probe(f, p, 0, {});
  EXPECT_GT(fit.test_macro_f1, 0.95);
  EXPECT_GE(fit.epochs, 1);
  EXPECT_LE(fit.epochs, 20);
}

TEST(Probe, ShuffledLabelsGiveChance) {
  auto [f, p] = separable(3000, 32, 1.0, 2);
  Lcg g{99};
  for (std::size_t i = p.labels.size(); i > 1; --i)
    std::swap(p.labels[i - 1], p.labels[static_cast<std::size_t>(g.uniform() * static_cast<double>(i))]);
  double mean = 0;
  for (int seed = 0; seed < 3; ++seed) mean += train_probe(f, p, seed, {}) / 3;
  EXPECT_GT(mean, 0.35);
  EXPECT_LT(mean, 0.62);
}

bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  return a.sizes() == b.sizes() && std::memcmp(a.contiguous().data_ptr(), b.contiguous().data_ptr(), a.nbytes()) == 0;
}

TEST(Probe, PureFunctionOfInputsAndSeedWhateverTheThreadCount) {
  auto [f, p] = separable(2000, 1024, 0.2, 3);
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const ProbeFit one = fit_probe(f, p, 4, {});
  at::set_num_threads(2);
  const ProbeFit two = fit_probe(f, p, 4, {});
  at::set_num_threads(threads);
  EXPECT_TRUE(same_bits(one.weight, two.weight));
  EXPECT_TRUE(same_bits(one.bias, two.bias));
  EXPECT_EQ(one.best_dev_loss, two.best_dev_loss);
  EXPECT_EQ(one.test_macro_f1, two.test_macro_f1);
  const ProbeFit other = fit_probe(f, p, 5, {});
  EXPECT_FALSE(same_bits(one.weight, other.weight));
}

TEST(Probe, EarlyStoppingKeepsBestCheckpoint) {
  // Pure noise labels: dev loss stops improving early, so training stops before 20 epochs and
  // the kept checkpoint's dev loss is the best seen.
  auto [f, p] = separable(600, 64, 0.0, 4);
  Lcg g{5};
  for (auto& l : p.labels) l = g.uniform() < 0.5 ? 0 : 1;
  ProbeOptions o;
  o.lr = 0.05;
  const ProbeFit fit = fit_probe(f, p, 0, o);
  EXPECT_LT(fit.epochs, 20);
  EXPECT_TRUE(std::isfinite(fit.best_dev_loss));
}

TEST(PooledFeatures, MeanOfEachSentencesOwnHiddenStates) {
  const auto m = model::Decoder::load(test::source_path("tests/fixtures/model/llama_untied"), at::kFloat);
  ProbePack p;
  p.path = "probe.h5";
  p.vocab_size = m->config().vocab_size;
  p.label_names = {"a", "b"};
  Lcg g{8};
  for (int i = 0; i < 13; ++i) {
    std::vector<std::int32_t> s(1 + static_cast<int>(g.uniform() * 20));
    for (auto& t : s) t = static_cast<std::int32_t>(g.uniform() * 100);
    p.sentences.push_back(s);
    p.labels.push_back(i % 2);
    p.split.push_back(static_cast<Split>(i % 3));
  }
  const std::vector<int> layers = {0, 2, 1};
  const at::Tensor feats = pooled_features(*m, p, layers, 50);  // several padded batches
  ASSERT_EQ(feats.sizes(), (at::IntArrayRef{3, 13, m->config().hidden_size}));
  at::NoGradGuard ng;
  for (std::size_t i = 0; i < p.sentences.size(); ++i) {
    std::vector<std::int64_t> ids(p.sentences[i].begin(), p.sentences[i].end());
    std::vector<at::Tensor> hidden;
    model::ForwardOptions fo;
    fo.hidden = &hidden;
    m->forward(at::tensor(ids, at::kLong).unsqueeze(0), fo);
    for (std::size_t l = 0; l < layers.size(); ++l) {
      const at::Tensor want = hidden[layers[l]][0].mean(0);
      EXPECT_LT((feats[l][i] - want).abs().max().item<double>(), 1e-4) << "sentence " << i << " layer " << layers[l];
    }
  }
  const at::Tensor all = pooled_features(*m, p, {}, 8192);
  EXPECT_EQ(all.size(0), m->config().num_hidden_layers + 1);
  EXPECT_LT((all[2] - feats[1]).abs().max().item<double>(), 1e-4);
  EXPECT_THROW(pooled_features(*m, p, {3}, 100), Error);
}

}  // namespace
}  // namespace ms::eval
