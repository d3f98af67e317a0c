#include "prefix_tree.hpp"

#include <algorithm>
#include <utility>

namespace ms::eval::detail {
namespace {

// A trie under the trunk. Nodes are appended as created, so undoing the last insertions (a group
// that overflowed its row) pops them from the back.
class Trie {
 public:
  struct Node {
    std::int32_t token;
    std::int64_t parent;  // -1: child of the trunk
    std::int64_t depth;   // 0 for the first token below the trunk
    std::vector<std::int64_t> children;
  };

  std::int64_t size() const { return static_cast<std::int64_t>(nodes_.size()); }
  bool empty() const { return nodes_.empty(); }

  // Inserts tokens[from:]; returns the node of every inserted token.
  std::vector<std::int64_t> insert(const std::vector<std::int32_t>& tokens, std::size_t from) {
    std::vector<std::int64_t> path;
    std::int64_t at = -1;
    for (std::size_t i = from; i < tokens.size(); ++i) {
      at = child(at, tokens[i]);
      path.push_back(at);
    }
    return path;
  }

  // Drops every node created at or after `mark` (the size() before the insertions to undo).
  void truncate(std::int64_t mark) {
    while (size() > mark) {
      const Node& n = nodes_.back();
      (n.parent < 0 ? roots_ : nodes_[static_cast<std::size_t>(n.parent)].children).pop_back();
      nodes_.pop_back();
    }
  }

  // Depth-first order: index of each node in the row, and the row's nodes.
  std::vector<std::int64_t> depth_first(std::vector<std::int64_t>* order) const {
    std::vector<std::int64_t> rank(nodes_.size(), -1);
    std::vector<std::int64_t> stack(roots_.rbegin(), roots_.rend());
    while (!stack.empty()) {
      const std::int64_t n = stack.back();
      stack.pop_back();
      rank[static_cast<std::size_t>(n)] = static_cast<std::int64_t>(order->size());
      order->push_back(n);
      const auto& ch = nodes_[static_cast<std::size_t>(n)].children;
      stack.insert(stack.end(), ch.rbegin(), ch.rend());
    }
    return rank;
  }

  const Node& node(std::int64_t n) const { return nodes_[static_cast<std::size_t>(n)]; }

 private:
  std::int64_t child(std::int64_t parent, std::int32_t token) {
    auto& list = parent < 0 ? roots_ : nodes_[static_cast<std::size_t>(parent)].children;
    for (std::int64_t c : list)
      if (nodes_[static_cast<std::size_t>(c)].token == token) return c;
    const std::int64_t depth = parent < 0 ? 0 : nodes_[static_cast<std::size_t>(parent)].depth + 1;
    nodes_.push_back({token, parent, depth, {}});
    const std::int64_t id = size() - 1;
    (parent < 0 ? roots_ : nodes_[static_cast<std::size_t>(parent)].children).push_back(id);
    return id;
  }

  std::vector<Node> nodes_;
  std::vector<std::int64_t> roots_;
};

// Length of the prefix every sequence shares, never reaching a scored input (those must be rows).
std::size_t common_prefix(const std::vector<ScoredSeq>& seqs) {
  if (seqs.empty()) return 0;
  std::size_t n = seqs[0].first_scored;
  for (const auto& s : seqs) {
    n = std::min(n, s.first_scored);
    std::size_t i = 0;
    while (i < n && s.tokens[i] == seqs[0].tokens[i]) ++i;
    n = i;
  }
  return n;
}

struct RowBuilder {
  Trie trie;
  std::vector<std::pair<std::size_t, std::vector<std::int64_t>>> paths;  // (seq, trie nodes of scored inputs)
};

PackedRow lay_out(const RowBuilder& b, std::int64_t trunk) {
  PackedRow row;
  std::vector<std::int64_t> order;
  const std::vector<std::int64_t> rank = b.trie.depth_first(&order);
  for (std::int64_t n : order) {
    const auto& node = b.trie.node(n);
    row.tokens.push_back(node.token);
    row.positions.push_back(trunk + node.depth);
    row.parent.push_back(node.parent < 0 ? -1 : rank[static_cast<std::size_t>(node.parent)]);
  }
  for (const auto& [seq, nodes] : b.paths) {
    std::vector<std::int64_t> at;
    for (std::int64_t n : nodes) at.push_back(rank[static_cast<std::size_t>(n)]);
    row.scored.emplace_back(seq, std::move(at));
  }
  return row;
}

}  // namespace

PackedBlock pack_sequences(const std::vector<ScoredSeq>& seqs,
                           const std::vector<std::pair<std::size_t, std::size_t>>& groups, std::int64_t row_tokens,
                           std::int64_t min_trunk) {
  PackedBlock block;
  const std::size_t trunk = common_prefix(seqs);
  const std::size_t cut = static_cast<std::int64_t>(trunk) >= min_trunk ? trunk : 0;
  if (cut > 0) block.trunk.assign(seqs[0].tokens.begin(), seqs[0].tokens.begin() + static_cast<std::ptrdiff_t>(cut));
  RowBuilder row;
  for (const auto& group : groups) {
    const std::size_t gb = group.first, ge = group.second;  // plain variables: lambdas capture them
    const std::int64_t mark = row.trie.size();
    const std::size_t kept = row.paths.size();
    auto place = [&] {
      for (std::size_t s = gb; s < ge; ++s) {
        const std::vector<std::int64_t> path = row.trie.insert(seqs[s].tokens, cut);
        const auto first = static_cast<std::ptrdiff_t>(seqs[s].first_scored - cut);
        row.paths.emplace_back(s, std::vector<std::int64_t>(path.begin() + first, path.end()));
      }
    };
    place();
    if (row.trie.size() > row_tokens && mark > 0) {  // the group overflows a non-empty row: next row
      row.trie.truncate(mark);
      row.paths.resize(kept);
      block.rows.push_back(lay_out(row, static_cast<std::int64_t>(cut)));
      row = RowBuilder{};
      place();
    }
  }
  if (!row.trie.empty()) block.rows.push_back(lay_out(row, static_cast<std::int64_t>(cut)));
  return block;
}

}  // namespace ms::eval::detail
