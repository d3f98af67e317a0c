// Scoring against a naive reference (eval_test_util.hpp): each choice's full lm-eval input
// ((ctx + cont)[-(max_length+1):][:-1], ctx the choice's own context where it has one) in its own
// forward, a full log_softmax, the last |cont| positions gathered, for both paths (prefix-tree batches and per item). Plus: the per-item path is
// bitwise independent of how items are grouped into calls; the packed path shares prefixes
// (few-shot headers) and agrees with the per-item path.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <cstring>

#include "common/test_util.hpp"
#include "eval_test_util.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/eval/scoring.hpp"
#include "mergesweep/model/decoder.hpp"

namespace ms::eval {
namespace {

std::string fixture(const std::string& name) { return test::source_path("tests/fixtures/model/" + name); }

using test_util::Lcg;

// Items with contexts of 1..`max_ctx` tokens and 1..4 choices of 1..`max_cont` tokens.
TaskPack random_pack(std::int64_t vocab, int items, int max_ctx, int max_cont, std::uint64_t seed) {
  Lcg g{seed};
  TaskPack p;
  p.name = "random";
  p.vocab_size = vocab;
  for (int i = 0; i < items; ++i) {
    TaskItem it;
    const int lc = 1 + g.next(max_ctx);
    for (int t = 0; t < lc; ++t) it.context.push_back(g.next(static_cast<std::int32_t>(vocab)));
    const int nc = 1 + g.next(4);
    for (int c = 0; c < nc; ++c) {
      Choice ch;
      const int k = 1 + g.next(max_cont);
      for (int t = 0; t < k; ++t) ch.continuation.push_back(g.next(static_cast<std::int32_t>(vocab)));
      ch.chars = 1 + g.next(9);
      ch.bytes = ch.chars + g.next(3);
      it.choices.push_back(ch);
    }
    it.gold = g.next(nc);
    p.items.push_back(it);
  }
  return p;
}

using test_util::naive_loglik;

void expect_matches_naive(const model::Decoder& m, const TaskPack& p, const ScoreOptions& o, std::int64_t max_len) {
  const auto got = score_items(m, p, 0, p.items.size(), o);
  ASSERT_EQ(got.size(), p.items.size());
  for (std::size_t i = 0; i < p.items.size(); ++i) {
    for (std::size_t c = 0; c < p.items[i].choices.size(); ++c) {
      const auto& cont = p.items[i].choices[c].continuation;
      const auto [ll, greedy] = naive_loglik(m, choice_context(p.items[i], c), cont, max_len);
      EXPECT_NEAR(got[i].loglik[c], ll, 2e-4 + 1e-5 * std::abs(ll)) << "item " << i << " choice " << c;
      EXPECT_EQ(got[i].greedy[c] != 0, greedy) << "item " << i << " choice " << c;
    }
  }
}

class Scoring : public ::testing::TestWithParam<std::string> {};

TEST_P(Scoring, MatchesNaiveFullForward) {
  const auto m = model::Decoder::load(fixture(GetParam()), at::kFloat);
  // Contexts up to 40 and continuations up to 12 tokens: all fit the 64 positions.
  expect_matches_naive(*m, random_pack(m->config().vocab_size, 30, 40, 12, 7), {}, m->config().max_position_embeddings);
}

TEST_P(Scoring, LeftTruncationAsLmEval) {
  const auto m = model::Decoder::load(fixture(GetParam()), at::kFloat);
  // Contexts up to 80 tokens against 64 positions, and a shorter max_length of 20: some choices
  // share the context, some are cut into it and run alone, some sit exactly at max_length + 1.
  const TaskPack p = random_pack(m->config().vocab_size, 25, 80, 10, 11);
  expect_matches_naive(*m, p, {}, m->config().max_position_embeddings);
  ScoreOptions o;
  o.max_length = 20;
  expect_matches_naive(*m, p, o, 20);
  TaskPack edge = random_pack(m->config().vocab_size, 1, 1, 1, 3);
  edge.items[0].context.assign(17, 5);  // 17 + 4 = 21 = max_length + 1: shared, no truncation
  edge.items[0].choices = {{{1, 2, 3, 4}, 1, 1, {}}, {{9, 8, 7, 6, 5}, 1, 1, {}}, {{3}, 1, 1, {}}};
  edge.items[0].gold = 0;
  expect_matches_naive(*m, edge, o, 20);
}

TEST_P(Scoring, GreedyContinuationIsGreedy) {
  const auto m = model::Decoder::load(fixture(GetParam()), at::kFloat);
  // Choice 0 is the model's own greedy decoding of 6 tokens after the context, so it is greedy;
  // choice 1 differs in its last token, so it is not.
  TaskPack p = random_pack(m->config().vocab_size, 1, 10, 1, 21);
  std::vector<std::int64_t> seq(p.items[0].context.begin(), p.items[0].context.end());
  std::vector<std::int32_t> cont;
  at::NoGradGuard g;
  for (int t = 0; t < 6; ++t) {
    const at::Tensor ids = at::from_blob(seq.data(), {1, static_cast<std::int64_t>(seq.size())}, at::kLong).clone();
    const auto next = m->logits(m->forward(ids))[0][-1].argmax().item<std::int64_t>();
    seq.push_back(next);
    cont.push_back(static_cast<std::int32_t>(next));
  }
  std::vector<std::int32_t> other = cont;
  other.back() = (other.back() + 1) % static_cast<std::int32_t>(m->config().vocab_size);
  p.items[0].choices = {{cont, 3, 3, {}}, {other, 3, 3, {}}};
  p.items[0].gold = 0;
  const auto s = score_items(*m, p, 0, 1, {});
  EXPECT_EQ(s[0].greedy[0], 1);
  EXPECT_EQ(s[0].greedy[1], 0);
  TaskTally t;
  t.add(p.items[0], s[0]);
  EXPECT_EQ(t.exact_match, 1);
  expect_matches_naive(*m, p, {}, m->config().max_position_embeddings);
}

TEST_P(Scoring, PerItemPathMatchesNaiveToo) {
  const auto m = model::Decoder::load(fixture(GetParam()), at::kFloat);
  ScoreOptions o;
  o.packed = false;
  expect_matches_naive(*m, random_pack(m->config().vocab_size, 12, 40, 12, 7), o, m->config().max_position_embeddings);
}

// winogrande-style items (lm-eval's multiple_input form): every choice has its own context (an
// optional header shared by every item, a common sentence start, the choice's own words, the rest
// of the sentence) and all choices share one continuation. Contexts run up to about `max_ctx`.
TaskPack per_choice_pack(std::int64_t vocab, int items, int header, int max_ctx, std::uint64_t seed) {
  Lcg g{seed};
  TaskPack p = random_pack(vocab, items, 2, 6, seed + 1);
  const auto tok = [&] { return g.next(static_cast<std::int32_t>(vocab)); };
  std::vector<std::int32_t> head;
  for (int t = 0; t < header; ++t) head.push_back(tok());
  for (auto& it : p.items) {
    std::vector<std::int32_t> start = head, rest;
    for (int t = 0, n = g.next(max_ctx / 2); t < n; ++t) start.push_back(tok());
    for (int t = 0, n = g.next(max_ctx / 4); t < n; ++t) rest.push_back(tok());
    const std::vector<std::int32_t> cont = it.choices[0].continuation;
    for (std::size_t c = 0; c < it.choices.size(); ++c) {
      Choice& ch = it.choices[c];
      ch.context = start;
      for (int t = 0, n = 1 + g.next(3); t < n; ++t) ch.context.push_back(tok());
      ch.context.insert(ch.context.end(), rest.begin(), rest.end());
      ch.continuation = cont;
    }
    it.context.clear();
  }
  return p;
}

TEST_P(Scoring, PerChoiceContextsMatchNaiveOnBothPaths) {
  const auto m = model::Decoder::load(fixture(GetParam()), at::kFloat);
  const std::int64_t positions = m->config().max_position_embeddings;
  ScoreOptions per_item;
  per_item.packed = false;
  // Everything fits the 64 positions; then with a 12-token header shared by every item.
  for (const int header : {0, 12}) {
    const TaskPack p = per_choice_pack(m->config().vocab_size, 20, header, 40, 31 + static_cast<std::uint64_t>(header));
    expect_matches_naive(*m, p, {}, positions);
    expect_matches_naive(*m, p, per_item, positions);
  }
  // Left truncation: contexts beyond 64 positions and a max_length of 20 (some choices of an item
  // cut into their context, some not); and two choices with the same context (they share a cache
  // on the per-item path, a branch on the packed one).
  TaskPack p = per_choice_pack(m->config().vocab_size, 16, 8, 90, 41);
  p.items[0].choices[1].context = p.items[0].choices[0].context;
  ScoreOptions o;
  o.max_length = 20;
  for (const bool packed : {true, false}) {
    o.packed = per_item.packed = packed;
    expect_matches_naive(*m, p, per_item, positions);
    expect_matches_naive(*m, p, o, 20);
  }
}

// mistral's fixture has a sliding window of 6 positions, so its packed rows must hide old keys.
INSTANTIATE_TEST_SUITE_P(Fixtures, Scoring, ::testing::Values("llama_untied", "llama3_tied", "mistral", "qwen2", "qwen3"));

bool same_bits(const std::vector<ItemScore>& a, const std::vector<ItemScore>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].greedy != b[i].greedy || a[i].loglik.size() != b[i].loglik.size()) return false;
    if (std::memcmp(a[i].loglik.data(), b[i].loglik.data(), a[i].loglik.size() * sizeof(double)) != 0) return false;
  }
  return true;
}

TEST(ScoringBlocks, PerItemPathBitwiseTheSameHoweverItemsAreGrouped) {
  const auto m = model::Decoder::load(fixture("llama_untied"), at::kFloat);
  const TaskPack p = random_pack(m->config().vocab_size, 40, 30, 8, 5);
  ScoreOptions o;
  o.batch_tokens = 100;
  o.packed = false;
  const auto blocks = scoring_blocks(p, o);
  ASSERT_GT(blocks.size(), 3u);
  // Blocks tile the items in order.
  std::size_t next = 0;
  for (auto [b, e] : blocks) {
    EXPECT_EQ(b, next);
    EXPECT_LT(b, e);
    next = e;
  }
  EXPECT_EQ(next, p.items.size());
  EXPECT_EQ(scoring_blocks(p, o), blocks);  // a pure function

  const auto whole = score_items(*m, p, 0, p.items.size(), o);
  // Blocks scored in reverse order (as another rank might), and items one at a time.
  std::vector<ItemScore> by_block(p.items.size()), by_item(p.items.size());
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) {
    const auto part = score_items(*m, p, it->first, it->second, o);
    std::copy(part.begin(), part.end(), by_block.begin() + static_cast<std::ptrdiff_t>(it->first));
  }
  for (std::size_t i = p.items.size(); i-- > 0;) by_item[i] = score_items(*m, p, i, i + 1, o)[0];
  EXPECT_TRUE(same_bits(whole, by_block));
  EXPECT_TRUE(same_bits(whole, by_item));
  // A different block size changes the blocks, not the scores (no item's choices are split
  // at either size: every item here has at most 4 x 8 continuation tokens).
  ScoreOptions big = o;
  big.batch_tokens = 4096;
  EXPECT_NE(scoring_blocks(p, big), blocks);
  EXPECT_TRUE(same_bits(whole, score_items(*m, p, 0, p.items.size(), big)));
  // A budget that splits the choices of an item into several forwards still scores the same
  // requests (up to float rounding).
  ScoreOptions tiny = o;
  tiny.batch_tokens = 8;
  const auto split = score_items(*m, p, 0, p.items.size(), tiny);
  for (std::size_t i = 0; i < p.items.size(); ++i)
    for (std::size_t c = 0; c < split[i].loglik.size(); ++c)
      EXPECT_NEAR(split[i].loglik[c], whole[i].loglik[c], 1e-4);
}

TEST(ScoringErrors, VocabMismatchAndOverlongContinuation) {
  const auto m = model::Decoder::load(fixture("llama_untied"), at::kFloat);
  TaskPack p = random_pack(m->config().vocab_size, 2, 5, 3, 1);
  p.path = "pack.h5";
  p.vocab_size = m->config().vocab_size + 1;
  try {
    score_items(*m, p, 0, 2, {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("another tokenizer"), std::string::npos) << e.what();
  }
  p.vocab_size = m->config().vocab_size;
  p.items[1].choices[0].continuation.assign(70, 3);
  try {
    score_items(*m, p, 0, 2, {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("item 1 choice 0: 70 continuation tokens"), std::string::npos) << e.what();
  }
  ScoreOptions o;
  o.max_length = 65;
  EXPECT_THROW(score_items(*m, p, 0, 1, o), Error);
}

}  // namespace
}  // namespace ms::eval

namespace ms::eval {
namespace {

using test_util::Lcg;

// A k-shot style pack: every context starts with the same `header` tokens (as lm-eval's first_n
// few-shot sampler makes them), then its own question.
TaskPack header_pack(std::int64_t vocab, int items, int header, std::uint64_t seed) {
  TaskPack p = random_pack(vocab, items, 12, 5, seed);
  Lcg g{seed + 99};
  std::vector<std::int32_t> head;
  for (int t = 0; t < header; ++t) head.push_back(g.next(static_cast<std::int32_t>(vocab)));
  for (auto& it : p.items) it.context.insert(it.context.begin(), head.begin(), head.end());
  return p;
}

void expect_close(const std::vector<ItemScore>& a, const std::vector<ItemScore>& b, double tol) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].loglik.size(), b[i].loglik.size());
    for (std::size_t c = 0; c < a[i].loglik.size(); ++c) {
      EXPECT_NEAR(a[i].loglik[c], b[i].loglik[c], tol * (1 + std::abs(b[i].loglik[c]))) << "item " << i << " choice " << c;
      EXPECT_EQ(a[i].greedy[c], b[i].greedy[c]) << "item " << i << " choice " << c;
    }
  }
}

class PackedScoring : public ::testing::TestWithParam<std::string> {};

TEST_P(PackedScoring, SharedHeaderGivesThePerItemScores) {
  const auto m = model::Decoder::load(fixture(GetParam()), at::kFloat);
  // A 30-token header on 60 items: one trunk for the whole range and many rows of trees.
  const TaskPack p = header_pack(m->config().vocab_size, 60, 30, 3);
  ScoreOptions per_item, packed;
  per_item.packed = false;
  expect_close(score_items(*m, p, 0, p.items.size(), packed), score_items(*m, p, 0, p.items.size(), per_item), 1e-5);
  // Small forward batches (many batches of few rows) change nothing but rounding.
  packed.batch_tokens = 64;
  expect_close(score_items(*m, p, 0, p.items.size(), packed), score_items(*m, p, 0, p.items.size(), per_item), 1e-5);
}

TEST_P(PackedScoring, HeadersThatDifferBetweenItemsShareWithinRows) {
  const auto m = model::Decoder::load(fixture(GetParam()), at::kFloat);
  // Two "subjects" with their own header in one range: no common trunk, the rows' tries share.
  TaskPack a = header_pack(m->config().vocab_size, 10, 20, 4), b = header_pack(m->config().vocab_size, 10, 20, 5);
  a.items.insert(a.items.end(), b.items.begin(), b.items.end());
  ScoreOptions per_item;
  per_item.packed = false;
  expect_close(score_items(*m, a, 0, a.items.size(), {}), score_items(*m, a, 0, a.items.size(), per_item), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, PackedScoring, ::testing::Values("llama_untied", "mistral", "qwen3"));

TEST(PackedScoring, ABlockScoresTheSameBitsInAnyOrder) {
  const auto m = model::Decoder::load(fixture("qwen2"), at::kFloat);
  const TaskPack p = header_pack(m->config().vocab_size, 30, 16, 8);
  ScoreOptions o;
  o.batch_tokens = 300;
  const auto blocks = scoring_blocks(p, o);
  ASSERT_GT(blocks.size(), 2u);
  std::vector<ItemScore> forward(p.items.size()), backward(p.items.size());
  for (const auto& [b, e] : blocks) {
    const auto s = score_items(*m, p, b, e, o);
    std::copy(s.begin(), s.end(), forward.begin() + static_cast<std::ptrdiff_t>(b));
  }
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) {
    const auto s = score_items(*m, p, it->first, it->second, o);
    std::copy(s.begin(), s.end(), backward.begin() + static_cast<std::ptrdiff_t>(it->first));
  }
  EXPECT_TRUE(same_bits(forward, backward));
}

}  // namespace
}  // namespace ms::eval
