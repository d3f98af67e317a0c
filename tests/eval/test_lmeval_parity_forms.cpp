// Parity with lm-evaluation-harness for per-choice contexts and rolling log-likelihood
// (tests/fixtures/lmeval_wino_roll/make_fixture.py): for a byte-level BPE and a SentencePiece-style
// byte-fallback tokenizer, a random tiny Llama, a winogrande-style multiple_input task (1-shot,
// two sentences past the 96 positions) and a rolling task (documents of one to seven windows),
// lm-eval's HF-backend outputs (--log_samples) and the packs exported from lm-eval's own requests.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "common/test_util.hpp"
#include "mergesweep/eval/evaluate.hpp"
#include "mergesweep/model/decoder.hpp"

namespace ms::eval {
namespace {

struct Case {
  std::string tokenizer;  // fixture folder suffix
  bool packed;
};

class LmEvalParityForms : public ::testing::TestWithParam<Case> {
 protected:
  std::string dir() const { return test::source_path("tests/fixtures/lmeval_wino_roll_" + GetParam().tokenizer); }
  nlohmann::json expected() const { return nlohmann::json::parse(test::read_file(dir() + "/expected.json")); }
};

TEST_P(LmEvalParityForms, PerChoiceContextsGiveLmEvalsChoicesAndMetrics) {
  const auto want = expected()["ms_wino"];
  const TaskPack pack = read_task_pack(dir() + "/ms_wino.h5");
  const auto model = model::Decoder::load(dir() + "/model", at::kFloat);
  ASSERT_EQ(pack.items.size(), want["items"].size());
  ScoreOptions o;
  o.packed = GetParam().packed;
  const auto scores = score_items(*model, pack, 0, pack.items.size(), o);
  TaskTally tally;
  for (std::size_t i = 0; i < pack.items.size(); ++i) {
    const auto& w = want["items"][i];
    ASSERT_EQ(w["loglik"].size(), pack.items[i].choices.size()) << "item " << i;
    EXPECT_TRUE(pack.items[i].context.empty()) << "item " << i;
    for (std::size_t c = 0; c < pack.items[i].choices.size(); ++c) {
      EXPECT_FALSE(pack.items[i].choices[c].context.empty()) << "item " << i << " choice " << c;
      const double ll = w["loglik"][c].get<double>();
      EXPECT_NEAR(scores[i].loglik[c], ll, 1e-4) << "item " << i << " choice " << c;
      EXPECT_EQ(scores[i].greedy[c] != 0, w["is_greedy"][c].get<bool>()) << "item " << i << " choice " << c;
    }
    TaskTally one;
    one.add(pack.items[i], scores[i]);
    EXPECT_EQ(one.acc, w["acc"].get<double>()) << "item " << i;
    EXPECT_EQ(one.acc_norm, w["acc_norm"].get<double>()) << "item " << i;
    EXPECT_EQ(one.acc_bytes, w["acc_bytes"].get<double>()) << "item " << i;
    EXPECT_EQ(one.exact_match, w["exact_match"].get<double>()) << "item " << i;
    tally.merge(one);
  }
  for (const auto& m : tally.metrics()) {
    EXPECT_NEAR(m.value, want["metrics"][m.name].get<double>(), 1e-12) << m.name;
    EXPECT_NEAR(m.stderr_, want["metrics"][m.name + "_stderr"].get<double>(), 1e-12) << m.name;
  }
}

TEST_P(LmEvalParityForms, RollingPerplexitiesAreLmEvals) {
  const auto e = expected();
  const auto want = e["ms_roll"];
  const TaskPack pack = read_task_pack(dir() + "/ms_roll.h5");
  const auto model = model::Decoder::load(dir() + "/model", at::kFloat);
  EXPECT_EQ(pack.rolling_max_length, e["max_length"].get<std::int64_t>());
  ASSERT_EQ(pack.docs.size(), want["docs"].size());
  ASSERT_GT(pack.items.size(), pack.docs.size() + 5);  // several documents span several windows
  for (std::size_t d = 0; d < pack.docs.size(); ++d) {
    EXPECT_EQ(pack.docs[d].words, want["docs"][d]["words"].get<std::int64_t>()) << "doc " << d;
    EXPECT_EQ(pack.docs[d].bytes, want["docs"][d]["bytes"].get<std::int64_t>()) << "doc " << d;
  }
  EvalOptions o;
  o.score.packed = GetParam().packed;
  o.score.batch_tokens = 300;  // several blocks
  const EvalResult r = evaluate(*model, {pack}, {}, o);
  const TaskResult& t = r.tasks.at(0);
  ASSERT_EQ(t.doc_loglik.size(), pack.docs.size());
  for (std::size_t d = 0; d < pack.docs.size(); ++d) {
    const double ll = want["docs"][d]["loglik"].get<double>();
    // lm-eval sums each window's float32 log-probs in float32; here they are summed in double.
    EXPECT_NEAR(t.doc_loglik[d], ll, 2e-4 + 1e-6 * std::abs(ll)) << "doc " << d;
  }
  ASSERT_EQ(t.rolling_metrics.size(), 3u);
  for (const auto& m : t.rolling_metrics) {
    const double v = want["metrics"][m.name].get<double>();
    EXPECT_NEAR(m.value, v, 1e-6 * std::abs(v)) << m.name;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, LmEvalParityForms,
                         ::testing::Values(Case{"bpe", true}, Case{"bpe", false}, Case{"spm", true},
                                           Case{"spm", false}),
                         [](const auto& p) { return p.param.tokenizer + (p.param.packed ? "Packed" : "PerItem"); });

}  // namespace
}  // namespace ms::eval
