#include "mergesweep/eval/evaluate.hpp"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <chrono>
#include <cmath>
#include <numeric>

#include "mergesweep/core/error.hpp"
#include "mergesweep/eval/generate.hpp"
#include "mergesweep/model/decoder.hpp"
#include "evaluate_detail.hpp"

namespace ms::eval {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

namespace detail {

bool group_stops(const EvalShare& share) {
  std::int64_t flag = share.stop && share.stop() ? 1 : 0;
  if (share.size > 1 && share.sum_int) share.sum_int(&flag, 1);
  return flag > 0;
}

bool score_rounds(const model::Decoder& model, const TaskPack& pack, const EvalOptions& opts, const EvalShare& share,
                  const EvalProgress& progress, TaskResult& r, const BlockScores& take) {
  const auto t0 = Clock::now();
  const auto blocks = scoring_blocks(pack, opts.score);
  const std::size_t ranks = static_cast<std::size_t>(std::max(1, share.size));
  const std::size_t rounds = (blocks.size() + ranks - 1) / ranks;
  std::size_t done = 0;
  for (std::size_t round = 0; round < rounds; ++round) {
    const std::size_t b = round * ranks + static_cast<std::size_t>(share.rank);
    if (b < blocks.size()) {
      const auto [begin, end] = blocks[b];
      take(begin, end, score_items(model, pack, begin, end, opts.score));
      for (std::size_t i = begin; i < end; ++i) r.tokens += item_tokens(pack.items[i]);
      done += end - begin;
    }
    r.seconds = since(t0);
    if (progress) progress(r, done, pack.items.size());
    if (group_stops(share)) return false;
  }
  return true;
}

}  // namespace detail

namespace {

using detail::group_stops;
using detail::score_rounds;

// Integer tallies summed over the group: exact, so any split of blocks gives the same metrics.
void sum_tallies(std::vector<TaskResult>& results, const EvalShare& share) {
  if (share.size <= 1) return;
  std::vector<std::int64_t> t;
  for (const auto& r : results)
    t.insert(t.end(), {r.tally.n, r.tally.acc, r.tally.acc_norm, r.tally.acc_bytes, r.tally.exact_match});
  share.sum_int(t.data(), t.size());
  for (std::size_t k = 0; k < results.size(); ++k) {
    TaskTally& y = results[k].tally;
    const std::int64_t* v = &t[k * 5];
    y.n = v[0], y.acc = v[1], y.acc_norm = v[2], y.acc_bytes = v[3], y.exact_match = v[4];
  }
}

// Every item's outcome on every rank of the group: each item's slot is written by the one rank
// that scored it and is 0 on the others, so the sums are exact and the rows never depend on the
// rank count. An integer slot holds 1 + correct bits + 16 × chosen (0: never scored).
std::vector<ItemOutcome> gather_outcomes(const TaskPack& pack, std::vector<std::int64_t>& slots,
                                         std::vector<double>& gold, const EvalShare& share) {
  if (share.size > 1) {
    share.sum_int(slots.data(), slots.size());
    share.sum_double(gold.data(), gold.size());
  }
  std::vector<ItemOutcome> out(slots.size());
  for (std::size_t i = 0; i < slots.size(); ++i) {
    const std::int64_t v = slots[i] - 1;
    if (v < 0) fail(pack.path, "items", "item " + std::to_string(i) + " was not scored by exactly one rank");
    out[i].correct = static_cast<std::uint8_t>(v & 15);
    out[i].chosen = static_cast<std::int32_t>(v >> 4);
    out[i].gold_loglik = gold[i];
  }
  return out;
}

// multiple_choice: the blocks' items added to the task's tally (summed over the group later) and
// every item's outcome gathered to the whole group.
bool score_choice_task(const model::Decoder& model, const TaskPack& pack, const EvalOptions& opts,
                       const EvalShare& share, const EvalProgress& progress, TaskResult& r) {
  std::vector<std::int64_t> slots(pack.items.size(), 0);
  std::vector<double> gold(pack.items.size(), 0.0);
  const bool done = score_rounds(model, pack, opts, share, progress, r,
                                 [&](std::size_t begin, std::size_t end, const std::vector<ItemScore>& scores) {
                                   for (std::size_t i = begin; i < end; ++i) {
                                     const ItemOutcome o = item_outcome(pack.items[i], scores[i - begin]);
                                     r.tally.add(o);
                                     slots[i] = 1 + o.correct + 16 * static_cast<std::int64_t>(o.chosen);
                                     gold[i] = o.gold_loglik + 0.0;  // -0.0 becomes +0.0, as a sum with 0 makes it
                                   }
                                 });
  if (done) r.items = gather_outcomes(pack, slots, gold, share);
  return done;
}

std::vector<int> probe_layers(const EvalOptions& opts, int num_layers) {
  std::vector<int> layers = opts.layers;
  if (layers.empty()) {
    layers.resize(static_cast<std::size_t>(num_layers) + 1);
    std::iota(layers.begin(), layers.end(), 0);
  }
  return layers;
}

// Every (layer, seed) probe of a pack: this rank's share trained as one batch, F1 summed over the
// group (one nonzero per slot, so the sum is exact).
ProbeResult probe_pack(const model::Decoder& model, const ProbePack& pack, const EvalOptions& opts,
                       const EvalShare& share) {
  const auto t0 = Clock::now();
  const std::vector<int> layers = probe_layers(opts, static_cast<int>(model.config().num_hidden_layers));
  const at::Tensor feats = pooled_features(model, pack, layers, opts.score.batch_tokens);
  const std::size_t seeds = static_cast<std::size_t>(opts.probe_seeds);
  std::vector<ProbeJob> jobs;
  std::vector<std::size_t> slot;
  for (std::size_t j = 0; j < layers.size() * seeds; ++j) {
    if (static_cast<int>(j % static_cast<std::size_t>(std::max(1, share.size))) != share.rank) continue;
    jobs.push_back({static_cast<std::int64_t>(j / seeds), static_cast<std::int32_t>(j % seeds)});
    slot.push_back(j);
  }
  std::vector<double> f1(layers.size() * seeds, 0.0);
  if (opts.batched_probes) {
    const auto fits = fit_probes(feats, pack, jobs, opts.probe);
    for (std::size_t i = 0; i < fits.size(); ++i) f1[slot[i]] = fits[i].test_macro_f1;
  } else {
    for (std::size_t i = 0; i < jobs.size(); ++i)
      f1[slot[i]] = fit_probes(feats, pack, {jobs[i]}, opts.probe).front().test_macro_f1;
  }
  if (share.size > 1) share.sum_double(f1.data(), f1.size());
  ProbeResult r;
  r.name = pack.name;
  for (std::size_t li = 0; li < layers.size(); ++li) {
    ProbeLayerResult l;
    l.layer = layers[li];
    l.macro_f1.assign(f1.begin() + static_cast<std::ptrdiff_t>(li * seeds),
                      f1.begin() + static_cast<std::ptrdiff_t>((li + 1) * seeds));
    for (double v : l.macro_f1) l.mean += v / static_cast<double>(seeds);
    double ss = 0;
    for (double v : l.macro_f1) ss += (v - l.mean) * (v - l.mean);
    l.std = seeds > 1 ? std::sqrt(ss / static_cast<double>(seeds - 1)) : std::nan("");
    r.layers.push_back(std::move(l));
  }
  r.seconds = since(t0);
  return r;
}

}  // namespace

EvalResult evaluate(const model::Decoder& model, const std::vector<TaskPack>& tasks,
                    const std::vector<ProbePack>& probes, const EvalOptions& opts, const EvalShare& share,
                    const EvalProgress& progress) {
  if (share.size > 1 && (!share.sum_int || !share.sum_double))
    fail("", "evaluate", "a group of " + std::to_string(share.size) + " ranks needs its sum functions");
  if (opts.probe_seeds <= 0) fail("", "probe seeds", "must be positive, found " + std::to_string(opts.probe_seeds));
  for (const auto& pack : tasks) {
    if (pack.output_type == OutputType::LoglikelihoodRolling) detail::check_rolling_pack(model, pack, opts.score);
    if (pack.output_type == OutputType::GenerateUntil) check_generation_pack(pack, model, opts.score);
  }
  at::NoGradGuard no_grad;
  EvalResult out;
  const auto t0 = Clock::now();
  for (const auto& pack : tasks) {
    TaskResult r;
    r.name = pack.name;
    r.output_type = pack.output_type;
    bool finished = false;
    switch (pack.output_type) {
      case OutputType::MultipleChoice: finished = score_choice_task(model, pack, opts, share, progress, r); break;
      case OutputType::LoglikelihoodRolling:
        finished = detail::score_rolling_task(model, pack, opts, share, progress, r);
        break;
      case OutputType::GenerateUntil: finished = detail::generate_task(model, pack, opts, share, progress, r); break;
    }
    out.tasks.push_back(std::move(r));
    if (!finished) {
      out.stopped = true;
      return out;
    }
  }
  sum_tallies(out.tasks, share);
  for (std::size_t k = 0; k < out.tasks.size(); ++k) {
    if (tasks[k].output_type != OutputType::GenerateUntil || !tasks[k].generation.native_exact_match) continue;
    for (const Metric& m : out.tasks[k].tally.metrics())
      if (m.name == "exact_match") out.tasks[k].generation_metrics.push_back(m);
  }
  out.eval_seconds = since(t0);
  const auto t1 = Clock::now();
  for (const auto& pack : probes) {
    out.probes.push_back(probe_pack(model, pack, opts, share));
    if (group_stops(share)) {
      out.stopped = true;
      return out;
    }
  }
  out.probe_seconds = since(t1);
  return out;
}

}  // namespace ms::eval
