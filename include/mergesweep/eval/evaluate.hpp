// One evaluation of one model on task packs and probe packs, for the `eval` verb and the sweep's
// worker groups alike. Task items are scored in fixed blocks (scoring_blocks: a pure function of
// the pack and batch_tokens) dealt round-robin over the ranks that share the evaluation; integer
// tallies and probe scores are summed over them, so results never depend on the rank count.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "mergesweep/eval/probes.hpp"
#include "mergesweep/eval/scoring.hpp"
#include "mergesweep/eval/task_pack.hpp"

namespace ms::model { class Decoder; }

namespace ms::eval {

struct EvalOptions {
  ScoreOptions score;
  ProbeOptions probe;
  std::vector<int> layers;  // probe layers (0 = embeddings, L = final norm); empty = all
  int probe_seeds = 5;      // seeds 0..probe_seeds-1 per layer
  bool batched_probes = true;  // false: one probe per training run (the reference path)
};

// How the ranks of a group share one evaluation. The defaults are one rank alone.
struct EvalShare {
  int rank = 0, size = 1;
  // Sums over the group's ranks, in place (needed when size > 1).
  std::function<void(std::int64_t*, std::size_t)> sum_int;
  std::function<void(double*, std::size_t)> sum_double;
  // Asked between scoring rounds and probe packs on every rank; when any rank says true, every
  // rank stops (the group agrees by one sum) and the result is marked stopped.
  std::function<bool()> stop;
};

// One greedy generation (generate_until): the whole group holds every item's.
struct Generation {
  enum class Stop : std::uint8_t { Until, StopToken, Length };  // why decoding ended
  std::vector<std::int32_t> tokens;  // generated ids, up to the stop (a stop token excluded)
  std::string text;  // bytes of `tokens` decoded and cut before the first `until` string (lm-eval's response)
  Stop stop = Stop::Length;
};

struct TaskResult {
  std::string name;
  OutputType output_type = OutputType::MultipleChoice;
  TaskTally tally;           // whole group (multiple_choice)
  // multiple_choice: every item's outcome, in pack order (whole group); the tally is their sum.
  std::vector<ItemOutcome> items;
  // loglikelihood_rolling: per document, the summed log-likelihood of its windows (whole group),
  // and the metrics word_perplexity, byte_perplexity, bits_per_byte computed from them; the
  // tokens its windows scored, and the pack's word and byte counts (the metrics' denominators).
  std::vector<double> doc_loglik;
  std::vector<std::int64_t> doc_tokens, doc_words, doc_bytes;
  std::vector<Metric> rolling_metrics;
  std::vector<Generation> generations;  // generate_until: one per item, in pack order (whole group)
  // generate_until packs with native_exact_match: exact_match (response == target), whole group.
  std::vector<Metric> generation_metrics;
  std::int64_t tokens = 0;   // tokens this rank scored (context + continuations, as requested)
  double seconds = 0;
};

struct ProbeLayerResult {
  int layer = 0;
  std::vector<double> macro_f1;  // per seed
  double mean = 0;
  double std = 0;                // sample std (ddof 1) over seeds; NaN for a single seed
};

struct ProbeResult {
  std::string name;
  std::vector<ProbeLayerResult> layers;
  double seconds = 0;
};

struct EvalResult {
  std::vector<TaskResult> tasks;
  std::vector<ProbeResult> probes;
  bool stopped = false;  // `stop` said so: the results are incomplete
  double eval_seconds = 0, probe_seconds = 0;
};

// Called after each scoring round with the task and items scored so far on this rank.
using EvalProgress = std::function<void(const TaskResult& running, std::size_t items_done, std::size_t items)>;

EvalResult evaluate(const model::Decoder& model, const std::vector<TaskPack>& tasks,
                    const std::vector<ProbePack>& probes, const EvalOptions& opts, const EvalShare& share = {},
                    const EvalProgress& progress = {});

}  // namespace ms::eval
