// Prefix trees for batched scoring (internal to ms_eval). Every sequence a block scores (an
// item's context followed by one choice's continuation minus its last token) goes into a trie, so
// a token shared by several sequences (a few-shot header, an item's context before its choices,
// a common start of two choices) is computed once. The trie is laid out in rows of at most
// `row_tokens` nodes in depth-first order: a node's subtree is the contiguous range after it, so
// "key q is an ancestor of query p" is q <= p < subtree_end[q], and each node sits at the position
// its token has in its sequences. The prefix common to every sequence of the block (the trunk)
// runs once, before the rows, into a KV cache that every row attends to.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ms::eval::detail {

// One sequence to score: `tokens` are the inputs, the hidden state at input index
// first_scored + j predicts targets[j].
struct ScoredSeq {
  std::vector<std::int32_t> tokens;
  std::size_t first_scored = 0;
  std::vector<std::int32_t> targets;
};

struct PackedRow {
  std::vector<std::int64_t> tokens;       // depth-first order
  std::vector<std::int64_t> positions;    // trunk length + depth
  std::vector<std::int64_t> parent;       // node index of the parent in this row, -1 below the trunk
  // Per sequence placed in this row: its index in the input and the row node of each scored input.
  std::vector<std::pair<std::size_t, std::vector<std::int64_t>>> scored;
  std::int64_t size() const { return static_cast<std::int64_t>(tokens.size()); }
};

struct PackedBlock {
  std::vector<std::int64_t> trunk;  // shared by every sequence; empty when too short to pay off
  std::vector<PackedRow> rows;
};

// Packs sequences (grouped: a group, such as the choices of one item, always shares a row) into a
// trunk and rows. A pure function of its inputs. `groups` are [begin, end) ranges of `seqs`.
PackedBlock pack_sequences(const std::vector<ScoredSeq>& seqs,
                           const std::vector<std::pair<std::size_t, std::size_t>>& groups, std::int64_t row_tokens,
                           std::int64_t min_trunk);

}  // namespace ms::eval::detail
