// Parity with lm-evaluation-harness: the fixture (tests/fixtures/lmeval/make_fixture.py) holds a
// tiny Llama with its own BPE tokenizer, a task of 41 items with leading/trailing whitespace,
// non-ASCII choices, an empty context and contexts longer than the model's 64 positions, the pack
// exported from lm-eval's own requests, and lm-eval's HF-backend outputs (--log_samples).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/test_util.hpp"
#include "mergesweep/eval/scoring.hpp"
#include "mergesweep/model/decoder.hpp"

namespace ms::eval {
namespace {

class LmEvalParity : public ::testing::TestWithParam<bool> {};

// Both scoring paths: prefix-tree batches (the default) and one item per forward.
TEST_P(LmEvalParity, PerItemLoglikelihoodsAndMetrics) {
  const std::string dir = test::source_path("tests/fixtures/lmeval");
  const auto expected = nlohmann::json::parse(test::read_file(dir + "/expected.json"));
  const TaskPack pack = read_task_pack(dir + "/ms_parity.h5");
  const auto model = model::Decoder::load(dir + "/model", at::kFloat);
  ASSERT_EQ(pack.items.size(), expected["items"].size());

  ScoreOptions o;
  o.packed = GetParam();
  const auto scores = score_items(*model, pack, 0, pack.items.size(), o);
  TaskTally tally;
  for (std::size_t i = 0; i < pack.items.size(); ++i) {
    const auto& want = expected["items"][i];
    ASSERT_EQ(want["loglik"].size(), pack.items[i].choices.size()) << "item " << i;
    for (std::size_t c = 0; c < pack.items[i].choices.size(); ++c) {
      const double ll = want["loglik"][c].get<double>();
      // lm-eval sums float32 log-probs in float32; here float32 log-probs are summed in double.
      EXPECT_NEAR(scores[i].loglik[c], ll, 1e-4 + 2e-6 * std::abs(ll)) << "item " << i << " choice " << c;
      EXPECT_EQ(scores[i].greedy[c] != 0, want["is_greedy"][c].get<bool>()) << "item " << i << " choice " << c;
    }
    TaskTally one;
    one.add(pack.items[i], scores[i]);
    EXPECT_EQ(one.acc, want["acc"].get<double>()) << "item " << i;
    EXPECT_EQ(one.acc_norm, want["acc_norm"].get<double>()) << "item " << i;
    EXPECT_EQ(one.acc_bytes, want["acc_bytes"].get<double>()) << "item " << i;
    EXPECT_EQ(one.exact_match, want["exact_match"].get<double>()) << "item " << i;
    tally.merge(one);
  }
  for (const auto& m : tally.metrics()) {
    EXPECT_NEAR(m.value, expected["metrics"][m.name].get<double>(), 1e-9) << m.name;
    EXPECT_NEAR(m.stderr_, expected["metrics"][m.name + "_stderr"].get<double>(), 1e-9) << m.name;
  }
}

INSTANTIATE_TEST_SUITE_P(Paths, LmEvalParity, ::testing::Values(true, false),
                         [](const auto& p) { return p.param ? "Packed" : "PerItem"; });

}  // namespace
}  // namespace ms::eval
