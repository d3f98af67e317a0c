// Pieces of the one evaluation loop (evaluate.cpp) shared by its output types (internal to
// ms_eval): evaluate() dispatches each pack to the function for its output type.
#pragma once

#include <cstddef>
#include <functional>
#include <vector>

#include "mergesweep/eval/evaluate.hpp"

namespace ms::eval::detail {

// True on every rank when any rank's `stop` says so (one sum over the group).
bool group_stops(const EvalShare& share);

// Receives the scores of one block [begin, end) this rank scored.
using BlockScores = std::function<void(std::size_t begin, std::size_t end, const std::vector<ItemScore>& scores)>;

// This rank's scoring blocks of `pack`, one round at a time (block b to rank b mod size; every
// rank runs the same rounds, so the stop agreement between rounds lines up), each handed to
// `take`; counts r.tokens and r.seconds and reports progress. Returns false when stopped.
bool score_rounds(const model::Decoder& model, const TaskPack& pack, const EvalOptions& opts, const EvalShare& share,
                  const EvalProgress& progress, TaskResult& r, const BlockScores& take);

// loglikelihood_rolling: refuses a pack whose windows were cut for another max_length than
// scoring uses (both named) or whose items are not windows of its documents. Called for every
// pack before any is scored, so a bad last pack fails before hours of work on the first.
void check_rolling_pack(const model::Decoder& model, const TaskPack& pack, const ScoreOptions& opts);

// loglikelihood_rolling (evaluate_rolling.cpp): windows scored, summed per document over the
// group, and lm-eval's word_perplexity, byte_perplexity and bits_per_byte. False when stopped.
bool score_rolling_task(const model::Decoder& model, const TaskPack& pack, const EvalOptions& opts,
                        const EvalShare& share, const EvalProgress& progress, TaskResult& r);

}  // namespace ms::eval::detail
