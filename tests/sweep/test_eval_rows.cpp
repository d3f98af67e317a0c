// What an evaluation puts into a config's archive rows by output type (eval_rows.hpp), eval.limit
// on rolling packs (whole documents), and the planner's eval cost model (eval_cost.hpp).
#include <gtest/gtest.h>

#include <cmath>

#include "mergesweep/sweep/eval_cost.hpp"
#include "mergesweep/sweep/eval_rows.hpp"

namespace ms::sweep {
namespace {

eval::EvalResult sample_eval() {
  eval::EvalResult ev;
  eval::TaskResult mc;
  mc.name = "arc";
  mc.tally.n = 4;
  mc.tally.acc = 3;
  mc.items = {{eval::ItemOutcome::kAcc, 1, -0.5}, {eval::ItemOutcome::kAcc | eval::ItemOutcome::kAccNorm, 0, -1.25},
              {0, 2, -3.0}, {eval::ItemOutcome::kAcc, 1, -0.1}};
  ev.tasks.push_back(mc);
  eval::TaskResult roll;
  roll.name = "wikitext";
  roll.output_type = eval::OutputType::LoglikelihoodRolling;
  roll.doc_loglik = {-10.0, -20.0, -5.0};
  roll.doc_tokens = {4, 8, 2};
  roll.doc_words = {3, 6, 1};
  roll.doc_bytes = {15, 30, 5};
  roll.rolling_metrics = {{"word_perplexity", 12.5, std::nan("")}, {"byte_perplexity", 1.5, std::nan("")},
                          {"bits_per_byte", 0.58, std::nan("")}};
  ev.tasks.push_back(roll);
  eval::TaskResult gen;
  gen.name = "gsm8k";
  gen.output_type = eval::OutputType::GenerateUntil;
  gen.generations.resize(3);
  gen.generations[0] = {{5, 6}, "42", eval::Generation::Stop::Until};
  gen.generations[1] = {{}, "", eval::Generation::Stop::StopToken};
  gen.generations[2] = {{7, 7, 7}, std::string("\0\xff", 2), eval::Generation::Stop::Length};
  ev.tasks.push_back(gen);
  eval::ProbeResult p;
  p.name = "pos";
  p.layers.push_back({2, {0.5, 0.7}, 0.6, 0.1});
  ev.probes.push_back(p);
  return ev;
}

TEST(EvalRows, EachOutputTypeWritesItsOwnRows) {
  archive::ConfigResult r;
  add_eval_rows(77, sample_eval(), 2, r);
  int mc = 0, rolling = 0;
  for (const auto& x : r.results) {
    EXPECT_EQ(x.config_id, 77u);
    EXPECT_NE(x.task, "gsm8k") << "generate_until tasks get no /results rows from the engine";
    if (x.task == "arc") {
      ++mc;
      EXPECT_EQ(x.n, 4);
      if (x.metric == "acc") {
        EXPECT_DOUBLE_EQ(x.value, 0.75);
      }
    }
    if (x.task == "wikitext") {
      ++rolling;
      EXPECT_EQ(x.n, 3) << "n counts documents";
    }
  }
  EXPECT_EQ(mc, 4);  // acc, acc_norm, acc_bytes, exact_match as before
  EXPECT_EQ(rolling, 3);
  EXPECT_EQ(r.results[4].metric, "word_perplexity");
  EXPECT_EQ(r.results[4].value, 12.5);
  ASSERT_EQ(r.generations.size(), 3u);
  EXPECT_EQ(r.generations[0].item, 0);
  EXPECT_EQ(r.generations[0].stop, "until");
  EXPECT_EQ(r.generations[0].tokens, (std::vector<std::int32_t>{5, 6}));
  EXPECT_EQ(r.generations[1].stop, "stop_token");
  EXPECT_EQ(r.generations[2].item, 2);
  EXPECT_EQ(r.generations[2].stop, "length");
  EXPECT_EQ(r.generations[2].text, std::string("\0\xff", 2));
  for (const auto& g : r.generations) EXPECT_EQ(g.task, "gsm8k");
  ASSERT_EQ(r.probes.size(), 1u);
  EXPECT_EQ(r.probes[0].seeds, 2);
  ASSERT_EQ(r.items.size(), 2u) << "per-item rows for the scored tasks, none for generate_until";
  const auto& choice = r.items[0];
  EXPECT_EQ(choice.config_id, 77u);
  EXPECT_EQ(choice.task, "arc");
  EXPECT_EQ(choice.kind, "choice");
  EXPECT_EQ(choice.outcome, (std::vector<std::uint8_t>{1, 3, 0, 1}));
  EXPECT_EQ(choice.chosen, (std::vector<std::int32_t>{1, 0, 2, 1}));
  EXPECT_EQ(choice.gold_loglik, (std::vector<float>{-0.5f, -1.25f, -3.0f, -0.1f}));
  const auto& roll = r.items[1];
  EXPECT_EQ(roll.kind, "rolling");
  EXPECT_EQ(roll.doc_loglik, (std::vector<double>{-10.0, -20.0, -5.0}));
  EXPECT_EQ(roll.doc_tokens, (std::vector<std::int64_t>{4, 8, 2}));
  EXPECT_EQ(roll.doc_words, (std::vector<std::int64_t>{3, 6, 1}));
  EXPECT_EQ(roll.doc_bytes, (std::vector<std::int64_t>{15, 30, 5}));
}

eval::TaskPack rolling_pack() {
  eval::TaskPack p;
  p.output_type = eval::OutputType::LoglikelihoodRolling;
  p.docs = {{10, 50}, {3, 12}, {8, 40}};
  for (std::int64_t d : {0, 0, 0, 1, 2, 2}) {
    eval::TaskItem it;
    it.doc = d;
    p.items.push_back(it);
  }
  return p;
}

TEST(EvalRows, LimitOnARollingPackKeepsWholeDocuments) {
  eval::TaskPack p = rolling_pack();
  eval::limit_task_pack(p, 2);
  EXPECT_EQ(p.docs.size(), 2u);
  EXPECT_EQ(p.items.size(), 4u) << "the three windows of document 0 and the one of document 1";
  eval::TaskPack q = rolling_pack();
  eval::limit_task_pack(q, 0);
  EXPECT_EQ(q.items.size(), 6u);
  eval::limit_task_pack(q, 5);
  EXPECT_EQ(q.items.size(), 6u);
  eval::TaskPack mc;
  mc.items.resize(10);
  eval::limit_task_pack(mc, 3);
  EXPECT_EQ(mc.items.size(), 3u);
}

TEST(EvalCost, GenerationItemsCostOnePrefillPlusMaxGenToksDecodeSteps) {
  eval::TaskPack mc;
  mc.name = "arc";
  mc.items.resize(1000);
  eval::TaskPack gen;
  gen.name = "gsm8k";
  gen.output_type = eval::OutputType::GenerateUntil;
  gen.generation.max_gen_toks = 256;
  gen.items.resize(100);
  const EvalCost c = estimate_eval_cost({mc, gen});
  ASSERT_EQ(c.tasks.size(), 2u);
  EXPECT_EQ(c.tasks[0].forwards, 1000.0);
  EXPECT_EQ(c.tasks[1].forwards, 100.0 * 257);
  EXPECT_EQ(c.forwards, 1000.0 + 25700.0);
  EXPECT_EQ(c.generation_forwards, 25700.0);
  const std::string text = describe_eval_cost(c, 10);
  EXPECT_NE(text.find("gsm8k"), std::string::npos) << text;
  EXPECT_NE(text.find("generate_until"), std::string::npos) << text;
  EXPECT_NE(text.find("(1 + 256 decode steps)"), std::string::npos) << text;
  EXPECT_NE(text.find("96% in generate_until"), std::string::npos) << text;
}

}  // namespace
}  // namespace ms::sweep
