// eval::evaluate, the one evaluation loop of the `eval` verb and the sweep: its metrics are the
// tallies of the fixed blocks; a group of ranks (two threads here, summing through a shared
// buffer) reports exactly what one rank does; batched probes give each (layer, seed) probe's own
// result, bitwise the same at 1 and 2 threads; a stop request ends it between rounds.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <thread>

#include "common/test_util.hpp"
#include "eval_test_util.hpp"
#include "mergesweep/eval/evaluate.hpp"
#include "mergesweep/model/decoder.hpp"

namespace ms::eval {
namespace {

std::unique_ptr<model::Decoder> tiny_model() {
  return model::Decoder::load(test::source_path("tests/fixtures/model/qwen2"), at::kFloat);
}

using test_util::Lcg;

TaskPack task(std::int64_t vocab, int items, std::uint64_t seed) {
  Lcg g{seed};
  TaskPack p;
  p.name = "task" + std::to_string(seed);
  p.vocab_size = vocab;
  for (int i = 0; i < items; ++i) {
    TaskItem it;
    for (int t = 0, n = 2 + g.next(20); t < n; ++t) it.context.push_back(g.next(static_cast<std::int32_t>(vocab)));
    for (int c = 0; c < 4; ++c) {
      Choice ch;
      for (int t = 0, n = 1 + g.next(4); t < n; ++t) ch.continuation.push_back(g.next(static_cast<std::int32_t>(vocab)));
      ch.chars = ch.bytes = 1 + g.next(5);
      it.choices.push_back(ch);
    }
    it.gold = g.next(4);
    p.items.push_back(it);
  }
  return p;
}

// Sentences labelled by whether token 7 occurs (on a random tiny model's features the probes
// learn little; what matters here is that each probe's training is its own).
ProbePack probe(std::int64_t vocab, int n, std::uint64_t seed) {
  Lcg g{seed};
  ProbePack p;
  p.name = "has7";
  p.vocab_size = vocab;
  p.label_names = {"no", "yes"};
  for (int i = 0; i < n; ++i) {
    std::vector<std::int32_t> s;
    for (int t = 0, len = 3 + g.next(10); t < len; ++t) s.push_back(8 + g.next(static_cast<std::int32_t>(vocab - 8)));
    if (i % 2) s[static_cast<std::size_t>(g.next(static_cast<std::int32_t>(s.size())))] = 7;
    p.sentences.push_back(s);
    p.labels.push_back(i % 2);
    p.split.push_back(i % 5 == 3 ? Split::kDev : i % 5 == 4 ? Split::kTest : Split::kTrain);
  }
  return p;
}

EvalOptions options() {
  EvalOptions o;
  o.score.batch_tokens = 200;  // several blocks per task
  o.probe_seeds = 3;
  o.probe.max_epochs = 6;
  return o;
}

TEST(Evaluate, MetricsAreTheTalliesOfTheFixedBlocks) {
  const auto m = tiny_model();
  const std::vector<TaskPack> tasks = {task(m->config().vocab_size, 37, 1), task(m->config().vocab_size, 11, 2)};
  const EvalOptions o = options();
  const EvalResult r = evaluate(*m, tasks, {}, o);
  ASSERT_EQ(r.tasks.size(), 2u);
  EXPECT_FALSE(r.stopped);
  for (std::size_t k = 0; k < tasks.size(); ++k) {
    TaskTally want;
    for (const auto& [b, e] : scoring_blocks(tasks[k], o.score)) {
      const auto s = score_items(*m, tasks[k], b, e, o.score);
      for (std::size_t i = b; i < e; ++i) want.add(tasks[k].items[i], s[i - b]);
    }
    EXPECT_EQ(r.tasks[k].name, tasks[k].name);
    EXPECT_EQ(r.tasks[k].tally.n, static_cast<std::int64_t>(tasks[k].items.size()));
    EXPECT_EQ(r.tasks[k].tally.acc, want.acc);
    EXPECT_EQ(r.tasks[k].tally.acc_norm, want.acc_norm);
    EXPECT_EQ(r.tasks[k].tally.exact_match, want.exact_match);
  }
}

TEST(Evaluate, AGroupOfTwoRanksReportsWhatOneRankDoes) {
  const auto m = tiny_model();
  const std::vector<TaskPack> tasks = {task(m->config().vocab_size, 29, 3)};
  const std::vector<ProbePack> probes = {probe(m->config().vocab_size, 60, 4)};
  const EvalOptions o = options();
  const EvalResult one = evaluate(*m, tasks, probes, o);
  const auto two = test_util::evaluate_as_two_ranks(*m, tasks, probes, o);
  for (const EvalResult& r : two) {
    EXPECT_EQ(r.tasks[0].tally.acc, one.tasks[0].tally.acc);
    EXPECT_EQ(r.tasks[0].tally.acc_norm, one.tasks[0].tally.acc_norm);
    EXPECT_EQ(r.tasks[0].tally.n, one.tasks[0].tally.n);
    ASSERT_EQ(r.probes[0].layers.size(), one.probes[0].layers.size());
    for (std::size_t l = 0; l < r.probes[0].layers.size(); ++l)
      EXPECT_EQ(r.probes[0].layers[l].macro_f1, one.probes[0].layers[l].macro_f1) << "layer " << l;
  }
  // The blocks were dealt out: each rank scored some, together exactly the whole task once.
  EXPECT_GT(two[0].tasks[0].tokens, 0);
  EXPECT_GT(two[1].tasks[0].tokens, 0);
  EXPECT_EQ(two[0].tasks[0].tokens + two[1].tasks[0].tokens, one.tasks[0].tokens);
}

TEST(Evaluate, BatchedProbesGiveEachProbesOwnResult) {
  const auto m = tiny_model();
  const std::vector<ProbePack> probes = {probe(m->config().vocab_size, 300, 5)};
  EvalOptions o = options();
  o.probe.max_epochs = 20;
  const EvalResult batched = evaluate(*m, {}, probes, o);
  o.batched_probes = false;
  const EvalResult alone = evaluate(*m, {}, probes, o);
  ASSERT_EQ(batched.probes[0].layers.size(), static_cast<std::size_t>(m->config().num_hidden_layers + 1));
  for (std::size_t l = 0; l < batched.probes[0].layers.size(); ++l) {
    const auto& b = batched.probes[0].layers[l];
    const auto& a = alone.probes[0].layers[l];
    ASSERT_EQ(b.macro_f1.size(), 3u);
    for (std::size_t s = 0; s < 3; ++s) EXPECT_NEAR(b.macro_f1[s], a.macro_f1[s], 1e-12) << "layer " << l << " seed " << s;
    EXPECT_FALSE(std::isnan(b.std));
  }
  // The dev-loss trajectories of two seeds differ: each probe has its own draws.
  const at::Tensor f = pooled_features(*m, probes[0], {1}, 8192);
  const auto fits = fit_probes(f, probes[0], {{0, 0}, {0, 1}}, o.probe);
  EXPECT_NE(fits[0].best_dev_loss, fits[1].best_dev_loss);
  EXPECT_NEAR(fits[1].best_dev_loss, fit_probe(f[0], probes[0], 1, o.probe).best_dev_loss, 1e-9);
}

TEST(Evaluate, BatchedProbesBitwiseTheSameAtOneAndTwoThreads) {
  const auto m = tiny_model();
  const ProbePack p = probe(m->config().vocab_size, 80, 6);
  const at::Tensor f = pooled_features(*m, p, {}, 8192);
  std::vector<ProbeJob> jobs;
  for (std::int64_t l = 0; l < f.size(0); ++l)
    for (std::int32_t s = 0; s < 3; ++s) jobs.push_back({l, s});
  const int saved = at::get_num_threads();
  at::set_num_threads(1);
  const auto one = fit_probes(f, p, jobs, {});
  at::set_num_threads(2);
  const auto two = fit_probes(f, p, jobs, {});
  at::set_num_threads(saved);
  for (std::size_t j = 0; j < jobs.size(); ++j) {
    EXPECT_EQ(one[j].best_dev_loss, two[j].best_dev_loss) << "probe " << j;
    EXPECT_EQ(one[j].test_macro_f1, two[j].test_macro_f1) << "probe " << j;
    EXPECT_TRUE(at::equal(one[j].weight, two[j].weight)) << "probe " << j;
  }
}

TEST(Evaluate, OneSeedHasNoStdAndAStopEndsIt) {
  const auto m = tiny_model();
  EvalOptions o = options();
  o.probe_seeds = 1;
  const EvalResult r = evaluate(*m, {}, {probe(m->config().vocab_size, 40, 7)}, o);
  EXPECT_TRUE(std::isnan(r.probes[0].layers[0].std));  // a sample std of one value is undefined
  int rounds = 0;
  EvalShare s;
  s.stop = [&] { return ++rounds == 2; };
  const EvalResult stopped = evaluate(*m, {task(m->config().vocab_size, 40, 8)}, {}, options(), s);
  EXPECT_TRUE(stopped.stopped);
  EXPECT_EQ(rounds, 2);
  EXPECT_LT(stopped.tasks[0].tally.n, 40);
}

}  // namespace
}  // namespace ms::eval
