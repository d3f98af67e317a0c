// Multiple-choice scoring with lm-eval's semantics (requests, left truncation, summed
// continuation log-likelihood, acc / acc_norm / acc_bytes, is_greedy, standard errors), computed
// faster: a block's sequences packed into prefix trees (a shared few-shot header or context runs
// once, many items per forward), log-probs gathered only where scored.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "mergesweep/eval/task_pack.hpp"

namespace ms::model { class Decoder; }

namespace ms::eval {

struct ScoreOptions {
  std::int64_t max_length = 0;       // 0: the model's max_position_embeddings (lm-eval's default)
  std::int64_t batch_tokens = 8192;  // tokens per scoring block and upper bound per forward batch
  // true: prefix-tree batches over the scored range; false: the per-item reference path (one
  // item's context, then its choices, per forward), kept for tests and comparisons.
  bool packed = true;
};

struct ItemScore {
  std::vector<double> loglik;        // per choice
  std::vector<std::uint8_t> greedy;  // per choice: every continuation token is the argmax
};

// The context lm-eval scores choice c on: the choice's own (lm-eval's multiple_input form, e.g.
// winogrande) or else the item's shared one.
inline const std::vector<std::int32_t>& choice_context(const TaskItem& item, std::size_t c) {
  const auto& own = item.choices[c].context;
  return own.empty() ? item.context : own;
}
// Tokens an item asks to score: its shared context, every choice's own context and continuation.
std::int64_t item_tokens(const TaskItem& item);

// Fixed scoring blocks [begin, end) of item indices: a pure function of the pack and options,
// so results never depend on how blocks are spread over ranks or on batch size elsewhere.
std::vector<std::pair<std::size_t, std::size_t>> scoring_blocks(const TaskPack& pack, const ScoreOptions& opts);
// Refuses a pack whose ids may reach past the model's embeddings (named in the error).
void check_pack_vocab(const TaskPack& pack, std::int64_t model_vocab);
// Scores items [begin, end) (normally one block: packed results are a pure function of the
// range; per item, of each item alone).
std::vector<ItemScore> score_items(const model::Decoder& model, const TaskPack& pack, std::size_t begin,
                                   std::size_t end, const ScoreOptions& opts);

struct Metric {
  std::string name;   // "acc", "acc_norm", "acc_bytes", "exact_match"
  double value = 0;
  double stderr_ = 0;  // lm-eval's standard error of the mean
};

// One item under every metric: what a TaskTally adds up, and what the archive keeps per item.
struct ItemOutcome {
  // Bits of `correct` (the archive's /items/outcome uses the same bits).
  static constexpr std::uint8_t kAcc = 1, kAccNorm = 2, kAccBytes = 4, kExactMatch = 8;
  std::uint8_t correct = 0;
  std::int32_t chosen = 0;  // acc's choice: numpy.argmax of the summed log-likelihoods
  double gold_loglik = 0;   // summed log-likelihood of the gold choice
};
// lm-eval's per-item metrics (acc, acc_norm, acc_bytes, exact_match) of one scored item.
ItemOutcome item_outcome(const TaskItem& item, const ItemScore& score);

// Additive per-task tallies: partial tallies from ranks combine exactly (integer counts).
struct TaskTally {
  std::int64_t n = 0;
  std::int64_t acc = 0, acc_norm = 0, acc_bytes = 0, exact_match = 0;
  void add(const TaskItem& item, const ItemScore& score) { add(item_outcome(item, score)); }
  void add(const ItemOutcome& o);
  void merge(const TaskTally& other);
  std::vector<Metric> metrics() const;
};

}  // namespace ms::eval
