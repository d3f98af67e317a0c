// The prefix trees behind batched scoring: every sequence can be read back from its row (tokens
// along the parent chain, positions = index in the sequence), shared prefixes are stored once,
// rows respect their size, and a group never straddles two rows.
#include <gtest/gtest.h>

#include <set>

#include "eval/prefix_tree.hpp"

namespace ms::eval::detail {
namespace {

ScoredSeq seq(std::vector<std::int32_t> tokens, std::size_t first_scored) {
  ScoredSeq s;
  s.targets.assign(tokens.size() - first_scored, 7);
  s.tokens = std::move(tokens);
  s.first_scored = first_scored;
  return s;
}

// Walks each scored node's parent chain (then the trunk) and checks it spells the sequence.
void expect_sequences_recoverable(const PackedBlock& b, const std::vector<ScoredSeq>& seqs) {
  std::set<std::size_t> seen;
  for (const PackedRow& row : b.rows) {
    for (const auto& [s, nodes] : row.scored) {
      seen.insert(s);
      const ScoredSeq& q = seqs[s];
      ASSERT_EQ(nodes.size(), q.tokens.size() - q.first_scored);
      std::vector<std::int64_t> chain;  // root of the row's tree .. last scored node
      for (std::int64_t n = nodes.back(); n >= 0; n = row.parent[static_cast<std::size_t>(n)]) chain.insert(chain.begin(), n);
      std::vector<std::int64_t> spelled;
      for (std::size_t d = 0; d < chain.size(); ++d) {
        spelled.push_back(row.tokens[static_cast<std::size_t>(chain[d])]);
        EXPECT_EQ(row.positions[static_cast<std::size_t>(chain[d])], static_cast<std::int64_t>(b.trunk.size() + d));
      }
      spelled.insert(spelled.begin(), b.trunk.begin(), b.trunk.end());
      EXPECT_EQ(spelled, std::vector<std::int64_t>(q.tokens.begin(), q.tokens.end())) << "sequence " << s;
      for (std::size_t j = 0; j < nodes.size(); ++j)  // scored node j holds input first_scored + j
        EXPECT_EQ(row.tokens[static_cast<std::size_t>(nodes[j])], q.tokens[q.first_scored + j]);
      for (std::size_t n = 0; n < row.parent.size(); ++n)  // depth-first: parents come first
        EXPECT_LT(row.parent[n], static_cast<std::int64_t>(n));
    }
  }
  EXPECT_EQ(seen.size(), seqs.size());
}

TEST(PrefixTree, TrunkIsTheCommonPrefixUpToTheFirstScoredInput) {
  const std::vector<ScoredSeq> seqs = {seq({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, 9), seq({1, 2, 3, 4, 5, 6, 7, 8, 9, 12}, 8),
                                       seq({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 13}, 10)};
  const PackedBlock b = pack_sequences(seqs, {{0, 2}, {2, 3}}, 100, 4);
  EXPECT_EQ(b.trunk, (std::vector<std::int64_t>{1, 2, 3, 4, 5, 6, 7, 8}));  // capped at first_scored 8
  ASSERT_EQ(b.rows.size(), 1u);
  // Below the trunk: 9 (shared by all), 10 (shared by two), 11, 12, 13: five nodes.
  EXPECT_EQ(b.rows[0].size(), 5);
  expect_sequences_recoverable(b, seqs);
  // A trunk shorter than min_trunk stays in the rows.
  const PackedBlock none = pack_sequences(seqs, {{0, 2}, {2, 3}}, 100, 9);
  EXPECT_TRUE(none.trunk.empty());
  EXPECT_EQ(none.rows[0].size(), 13);
  expect_sequences_recoverable(none, seqs);
}

TEST(PrefixTree, RowsHoldWholeGroupsWithinTheirSize) {
  std::vector<ScoredSeq> seqs;
  std::vector<std::pair<std::size_t, std::size_t>> groups;
  for (int g = 0; g < 12; ++g) {  // 12 items, each a 6-token context and 3 choices of 1-3 tokens
    const std::size_t first = seqs.size();
    for (int c = 0; c < 3; ++c) {
      std::vector<std::int32_t> t = {100 + g, 1, 2, 3, 4, 5};
      for (int k = 0; k <= c; ++k) t.push_back(200 + 10 * c + k);
      seqs.push_back(seq(t, 5));
    }
    groups.emplace_back(first, seqs.size());
  }
  const PackedBlock b = pack_sequences(seqs, groups, 20, 4);
  EXPECT_TRUE(b.trunk.empty());  // the first tokens differ
  EXPECT_GT(b.rows.size(), 1u);
  std::size_t placed = 0;
  for (const auto& row : b.rows) {
    EXPECT_LE(row.size(), 20);
    EXPECT_EQ(row.scored.size() % 3, 0u);  // whole items
    placed += row.scored.size();
  }
  EXPECT_EQ(placed, seqs.size());
  expect_sequences_recoverable(b, seqs);
  // A group larger than a row gets a row of its own.
  const PackedBlock big = pack_sequences(seqs, groups, 5, 4);
  EXPECT_EQ(big.rows.size(), groups.size());
  expect_sequences_recoverable(big, seqs);
}

}  // namespace
}  // namespace ms::eval::detail
