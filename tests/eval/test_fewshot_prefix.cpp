// Prefix reuse on a real 5-shot task: tests/fixtures/lmeval_fewshot holds an MMLU-style task
// (a description and the dev split's first 5 documents as examples, lm-eval's first_n sampler)
// exported from lm-eval's own requests, a tiny Llama, and lm-eval's HF-backend outputs. Scored
// with prefix reuse (the header once per block) and without (per item), the results are the same
// and are lm-eval's.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/test_util.hpp"
#include "mergesweep/eval/scoring.hpp"
#include "mergesweep/model/decoder.hpp"

namespace ms::eval {
namespace {

TEST(FewShotPrefix, SameResultsWithAndWithoutReuseAndAsLmEval) {
  const std::string dir = test::source_path("tests/fixtures/lmeval_fewshot");
  const auto expected = nlohmann::json::parse(test::read_file(dir + "/expected.json"));
  const TaskPack pack = read_task_pack(dir + "/ms_fewshot.h5");
  const auto model = model::Decoder::load(dir + "/model", at::kFloat);
  ASSERT_EQ(pack.items.size(), expected["items"].size());
  ASSERT_EQ(pack.num_fewshot, 5);

  // The header really is shared: every context starts with the same long run of tokens.
  std::size_t common = pack.items[0].context.size();
  for (const auto& it : pack.items) {
    std::size_t i = 0;
    while (i < common && i < it.context.size() && it.context[i] == pack.items[0].context[i]) ++i;
    common = i;
  }
  EXPECT_GT(common, 60u) << "the 5-shot header should be shared by every item";

  ScoreOptions reuse, per_item;
  per_item.packed = false;
  ScoreOptions small_blocks = reuse;
  small_blocks.batch_tokens = 1024;  // several blocks, each computing the header once
  std::vector<ItemScore> blocked;
  for (const auto& [b, e] : scoring_blocks(pack, small_blocks)) {
    const auto s = score_items(*model, pack, b, e, small_blocks);
    blocked.insert(blocked.end(), s.begin(), s.end());
  }
  ASSERT_GT(scoring_blocks(pack, small_blocks).size(), 2u);
  const auto with = score_items(*model, pack, 0, pack.items.size(), reuse);
  const auto without = score_items(*model, pack, 0, pack.items.size(), per_item);
  TaskTally t_with, t_without, t_blocked;
  for (std::size_t i = 0; i < pack.items.size(); ++i) {
    const auto& want = expected["items"][i];
    for (std::size_t c = 0; c < pack.items[i].choices.size(); ++c) {
      const double ll = want["loglik"][c].get<double>();
      EXPECT_NEAR(with[i].loglik[c], without[i].loglik[c], 1e-5 * (1 + std::abs(ll))) << "item " << i << " choice " << c;
      EXPECT_NEAR(blocked[i].loglik[c], without[i].loglik[c], 1e-5 * (1 + std::abs(ll))) << "item " << i;
      EXPECT_NEAR(with[i].loglik[c], ll, 1e-4 + 2e-6 * std::abs(ll)) << "item " << i << " choice " << c;
    }
    TaskTally one;
    one.add(pack.items[i], with[i]);
    EXPECT_EQ(one.acc, want["acc"].get<double>()) << "item " << i;
    EXPECT_EQ(one.acc_norm, want["acc_norm"].get<double>()) << "item " << i;
    t_with.merge(one);
    t_without.add(pack.items[i], without[i]);
    t_blocked.add(pack.items[i], blocked[i]);
  }
  EXPECT_EQ(t_with.acc, t_without.acc);
  EXPECT_EQ(t_with.acc_norm, t_without.acc_norm);
  EXPECT_EQ(t_blocked.acc, t_without.acc);
  EXPECT_NEAR(t_with.metrics()[0].value, expected["metrics"]["acc"].get<double>(), 1e-12);
  EXPECT_NEAR(t_with.metrics()[1].value, expected["metrics"]["acc_norm"].get<double>(), 1e-12);
}

}  // namespace
}  // namespace ms::eval
