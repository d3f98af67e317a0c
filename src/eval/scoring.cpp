// Multiple-choice scoring with lm-eval's semantics:
//   lm-eval input for one choice: (ctx + cont)[-(max_length+1):][:-1]; score = sum over the
//   continuation positions of log_softmax(logits)[token]; is_greedy = every token is the argmax.
// Two paths compute it. The default packs a block's sequences into prefix trees
// (scoring_packed.cpp). The per-item reference path (ScoreOptions::packed = false, here) runs the
// context (minus its last token) once into a KV cache, then every choice's [last context token,
// cont[:-1]] as one batch against the cache repeated per choice. A choice with its own context
// (lm-eval's multiple_input form) is scored on that context instead of the item's; choices
// sharing one context share its cache. Both see lm-eval's positions and
// tokens, so the scores are lm-eval's (up to float rounding).
// A choice whose whole sequence is longer than max_length + 1 has its context truncated from the
// left, so it no longer shares the prefix: it runs alone on exactly lm-eval's truncated input.
// Log-probabilities are gathered only where needed: logits of the scored positions only, then
// logit[token] - logsumexp(logits) per position (never a [B, T, V] log_softmax).
// Per item, every forward depends only on that item, so its results are bitwise the same however
// items are grouped; packed, they depend on the range scored together, which callers fix
// (scoring_blocks) so that results never depend on the rank count.
#include "mergesweep/eval/scoring.hpp"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>

#include "mergesweep/core/error.hpp"
#include "mergesweep/eval/aggregate.hpp"
#include "mergesweep/model/decoder.hpp"
#include "scoring_detail.hpp"

namespace ms::eval {
namespace detail {

namespace {
// Scored positions per lm_head call: bounds the [P, vocab] logits (a fixed constant, not an
// option, so results never depend on it changing).
constexpr std::int64_t kLogitRows = 512;
}  // namespace

std::int64_t effective_max_length(const model::Decoder& model, const ScoreOptions& opts, const std::string& path) {
  const std::int64_t model_max = model.config().max_position_embeddings;
  if (opts.max_length < 0) fail(path, "max_length", "must be >= 0 (0 = the model's max_position_embeddings)");
  if (opts.max_length == 0) {
    if (model_max <= 0) fail(path, "max_length", "the model's config.json has no max_position_embeddings; set a max length");
    return model_max;
  }
  if (model_max > 0 && opts.max_length > model_max)
    fail(path, "max_length",
         std::to_string(opts.max_length) + " exceeds the model's max_position_embeddings " + std::to_string(model_max));
  return opts.max_length;
}

at::Tensor ids_tensor(const std::vector<std::vector<std::int64_t>>& rows, std::int64_t width) {
  at::Tensor t = at::zeros({static_cast<std::int64_t>(rows.size()), width}, at::kLong);
  auto* p = t.data_ptr<std::int64_t>();
  for (std::size_t r = 0; r < rows.size(); ++r) std::copy(rows[r].begin(), rows[r].end(), p + r * width);
  return t;
}

// Log-probabilities of `targets` and whether each is the argmax, from hidden states [P, H] of the
// scored positions (in order). Returns float32 log-probs [P] and bool greedy [P] on the CPU.
std::pair<at::Tensor, at::Tensor> gather_logprobs(const model::Decoder& model, const at::Tensor& hidden,
                                                  const std::vector<std::int64_t>& targets) {
  const std::int64_t p = hidden.size(0);
  at::Tensor tgt = at::from_blob(const_cast<std::int64_t*>(targets.data()), {p}, at::kLong).to(hidden.device());
  std::vector<at::Tensor> lp, gr;
  for (std::int64_t s = 0; s < p; s += kLogitRows) {
    const std::int64_t e = std::min(p, s + kLogitRows);
    at::Tensor logits = model.logits(hidden.slice(0, s, e)).to(at::kFloat);  // [rows, V]
    at::Tensor t = tgt.slice(0, s, e);
    at::Tensor picked = logits.gather(1, t.unsqueeze(1)).squeeze(1);
    lp.push_back(picked - at::logsumexp(logits, {1}));
    gr.push_back(logits.argmax(1).eq(t));
  }
  return {at::cat(lp).cpu().contiguous(), at::cat(gr).cpu().contiguous()};
}

// Adds per-token log-probs (float32, summed in double in token order) to each choice's score.
void accumulate(const at::Tensor& lp, const at::Tensor& greedy, const std::vector<Sink>& sinks,
                const std::vector<std::int64_t>& lengths) {
  const float* l = lp.data_ptr<float>();
  const bool* g = greedy.data_ptr<bool>();
  std::int64_t pos = 0;
  for (std::size_t k = 0; k < sinks.size(); ++k) {
    double sum = 0;
    bool all = true;
    for (std::int64_t t = 0; t < lengths[k]; ++t, ++pos) {
      sum += static_cast<double>(l[pos]);
      all = all && g[pos];
    }
    sinks[k].score->loglik[sinks[k].choice] = sum;
    sinks[k].score->greedy[sinks[k].choice] = all ? 1 : 0;
  }
}

// One choice on its own: lm-eval's truncated input, scored positions are the last |cont|.
void score_alone(const model::Decoder& model, const TaskItem& item, std::size_t c, std::int64_t max_len,
                 const at::Device& device, ItemScore& out) {
  const auto& cont = item.choices[c].continuation;
  const auto& ctx = choice_context(item, c);
  std::vector<std::int64_t> whole(ctx.begin(), ctx.end());
  whole.insert(whole.end(), cont.begin(), cont.end());
  const std::int64_t total = static_cast<std::int64_t>(whole.size());
  const std::int64_t start = std::max<std::int64_t>(0, total - (max_len + 1));
  std::vector<std::int64_t> inp(whole.begin() + start, whole.end() - 1);
  const std::int64_t n = static_cast<std::int64_t>(inp.size());
  const std::int64_t k = static_cast<std::int64_t>(cont.size());
  at::Tensor hidden = model.forward(ids_tensor({inp}, n).to(device)).squeeze(0);  // [n, H]
  at::Tensor scored = hidden.slice(0, n - k, n);
  std::vector<std::int64_t> targets(cont.begin(), cont.end());
  auto [lp, gr] = gather_logprobs(model, scored, targets);
  accumulate(lp, gr, {{&out, c}}, {k});
}

}  // namespace detail

using detail::accumulate;
using detail::effective_max_length;
using detail::gather_logprobs;
using detail::ids_tensor;
using detail::score_alone;
using detail::score_packed;
using detail::Sink;

std::int64_t item_tokens(const TaskItem& item) {
  std::int64_t t = static_cast<std::int64_t>(item.context.size());
  for (const auto& ch : item.choices) t += static_cast<std::int64_t>(ch.context.size() + ch.continuation.size());
  return t;
}

std::vector<std::pair<std::size_t, std::size_t>> scoring_blocks(const TaskPack& pack, const ScoreOptions& opts) {
  // Consecutive items, each block up to batch_tokens tokens (context + all continuations), at
  // least one item: a pure function of the pack and the options.
  const std::int64_t budget = std::max<std::int64_t>(1, opts.batch_tokens);
  std::vector<std::pair<std::size_t, std::size_t>> blocks;
  std::size_t begin = 0;
  std::int64_t used = 0;
  for (std::size_t i = 0; i < pack.items.size(); ++i) {
    const std::int64_t t = item_tokens(pack.items[i]);
    if (i > begin && used + t > budget) {
      blocks.emplace_back(begin, i);
      begin = i;
      used = 0;
    }
    used += t;
  }
  if (begin < pack.items.size()) blocks.emplace_back(begin, pack.items.size());
  return blocks;
}

void check_pack_vocab(const TaskPack& pack, std::int64_t vocab) {
  if (pack.vocab_size > vocab)
    fail(pack.path, "attribute vocab_size",
         "the pack's token ids go up to " + std::to_string(pack.vocab_size) + " but the model has " +
             std::to_string(vocab) + " embeddings (a pack made for another tokenizer?)");
}

namespace {

void check_continuation_fits(const TaskPack& pack, std::size_t i, std::int64_t max_len) {
  const TaskItem& item = pack.items[i];
  for (std::size_t c = 0; c < item.choices.size(); ++c) {
    const std::int64_t k = static_cast<std::int64_t>(item.choices[c].continuation.size());
    if (k > max_len)
      fail(pack.path, "continuation_tokens",
           "item " + std::to_string(i) + " choice " + std::to_string(c) + ": " + std::to_string(k) +
               " continuation tokens do not fit the maximum length " + std::to_string(max_len));
  }
}

// Rows [last context token, cont[:-1]] of the choices `which` (all scored on `ctx`) in
// sub-batches of at most `budget` padded tokens, against `cache` (ctx[:-1]; unused when ctx is
// one token).
void score_rows_cached(const model::Decoder& model, const TaskItem& item, const std::vector<std::int32_t>& ctx,
                       const std::vector<std::size_t>& which, const model::KvCache& cache, std::int64_t budget,
                       const at::Device& device, ItemScore& score) {
  std::size_t s = 0;
  while (s < which.size()) {
    std::size_t e = s;
    std::int64_t width = 0;
    while (e < which.size()) {
      const std::int64_t k = static_cast<std::int64_t>(item.choices[which[e]].continuation.size());
      const std::int64_t w = std::max(width, k);
      if (e > s && w * static_cast<std::int64_t>(e + 1 - s) > budget) break;
      width = w;
      ++e;
    }
    // Right-padded with the last context token (padding sits after every scored position, so
    // causal attention never lets it be seen).
    std::vector<std::vector<std::int64_t>> rows;
    std::vector<std::int64_t> index, targets, lengths;
    std::vector<Sink> sinks;
    for (std::size_t r = s; r < e; ++r) {
      const auto& cont = item.choices[which[r]].continuation;
      std::vector<std::int64_t> row{ctx.back()};
      row.insert(row.end(), cont.begin(), cont.end() - 1);
      const std::int64_t k = static_cast<std::int64_t>(cont.size());
      for (std::int64_t t = 0; t < k; ++t) index.push_back(static_cast<std::int64_t>(r - s) * width + t);
      targets.insert(targets.end(), cont.begin(), cont.end());
      lengths.push_back(k);
      sinks.push_back({&score, which[r]});
      row.resize(static_cast<std::size_t>(width), ctx.back());
      rows.push_back(std::move(row));
    }
    const std::int64_t n = static_cast<std::int64_t>(rows.size());
    model::KvCache expanded;
    model::ForwardOptions fo;
    if (ctx.size() > 1) {
      expanded = cache.expand(n);
      fo.cache = &expanded;
    }
    at::Tensor hidden = model.forward(ids_tensor(rows, width).to(device), fo);  // [n, width, H]
    at::Tensor flat = hidden.reshape({n * width, hidden.size(2)});
    at::Tensor idx = at::from_blob(index.data(), {static_cast<std::int64_t>(index.size())}, at::kLong).to(flat.device());
    auto [lp, gr] = gather_logprobs(model, flat.index_select(0, idx), targets);
    accumulate(lp, gr, sinks, lengths);
    s = e;
  }
}

// The per-item path: the choices grouped by the context they are scored on (one group unless
// the item has per-choice contexts; groups in order of first appearance), each group's context
// (minus its last token) once into a KV cache, then its choices that fit against it.
void score_item_cached(const model::Decoder& model, const TaskItem& item, std::int64_t max_len, std::int64_t budget,
                       const at::Device& device, ItemScore& score) {
  std::vector<std::pair<const std::vector<std::int32_t>*, std::vector<std::size_t>>> groups;
  for (std::size_t c = 0; c < item.choices.size(); ++c) {
    const auto& ctx = choice_context(item, c);
    if (static_cast<std::int64_t>(ctx.size() + item.choices[c].continuation.size()) > max_len + 1) {
      score_alone(model, item, c, max_len, device, score);
      continue;
    }
    auto g = std::find_if(groups.begin(), groups.end(), [&](const auto& x) { return *x.first == ctx; });
    if (g == groups.end()) g = groups.insert(groups.end(), {&ctx, {}});
    g->second.push_back(c);
  }
  for (const auto& [ctx, which] : groups) {
    model::KvCache cache;
    if (ctx->size() > 1) {
      std::vector<std::int64_t> pre(ctx->begin(), ctx->end() - 1);
      model::ForwardOptions fo;
      fo.cache = &cache;
      model.forward(ids_tensor({pre}, static_cast<std::int64_t>(pre.size())).to(device), fo);
    }
    score_rows_cached(model, item, *ctx, which, cache, budget, device, score);
  }
}

}  // namespace

std::vector<ItemScore> score_items(const model::Decoder& model, const TaskPack& pack, std::size_t begin,
                                   std::size_t end, const ScoreOptions& opts) {
  if (begin > end || end > pack.items.size())
    fail(pack.path, "", "item range [" + std::to_string(begin) + ", " + std::to_string(end) + ") outside the pack's " +
                            std::to_string(pack.items.size()) + " items");
  check_pack_vocab(pack, model.config().vocab_size);
  const std::int64_t max_len = effective_max_length(model, opts, pack.path);
  at::NoGradGuard no_grad;
  std::vector<ItemScore> out(end - begin);
  for (std::size_t i = begin; i < end; ++i) {
    check_continuation_fits(pack, i, max_len);
    out[i - begin].loglik.assign(pack.items[i].choices.size(), 0.0);
    out[i - begin].greedy.assign(pack.items[i].choices.size(), 0);
  }
  if (opts.packed) {
    score_packed(model, pack, begin, end, max_len, opts, out);
    return out;
  }
  const std::int64_t budget = std::max<std::int64_t>(1, opts.batch_tokens);
  for (std::size_t i = begin; i < end; ++i)
    score_item_cached(model, pack.items[i], max_len, budget, model.device(), out[i - begin]);
  return out;
}

namespace {

// numpy.argmax over doubles: the first maximum; a NaN counts as the maximum (the first NaN wins).
std::size_t np_argmax(const std::vector<double>& v) {
  std::size_t best = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (std::isnan(v[i])) return i;
    if (v[i] > v[best]) best = i;
  }
  return best;
}

}  // namespace

ItemOutcome item_outcome(const TaskItem& item, const ItemScore& score) {
  const std::size_t c = item.choices.size();
  if (score.loglik.size() != c || score.greedy.size() != c)
    fail("", "scores", "an item with " + std::to_string(c) + " choices got " + std::to_string(score.loglik.size()) +
                           " scores");
  std::vector<double> norm(c), per_byte(c);
  for (std::size_t k = 0; k < c; ++k) {
    // lm-eval divides by float(len(choice)); IEEE division as numpy does it (x/0 = -inf or NaN).
    norm[k] = score.loglik[k] / static_cast<double>(item.choices[k].chars);
    per_byte[k] = score.loglik[k] / static_cast<double>(item.choices[k].bytes);
  }
  const auto gold = static_cast<std::size_t>(item.gold);
  ItemOutcome o;
  const std::size_t chosen = np_argmax(score.loglik);
  o.chosen = static_cast<std::int32_t>(chosen);
  o.gold_loglik = score.loglik[gold];
  if (chosen == gold) o.correct |= ItemOutcome::kAcc;
  if (np_argmax(norm) == gold) o.correct |= ItemOutcome::kAccNorm;
  if (np_argmax(per_byte) == gold) o.correct |= ItemOutcome::kAccBytes;
  if (score.greedy[gold] != 0) o.correct |= ItemOutcome::kExactMatch;
  return o;
}

void TaskTally::add(const ItemOutcome& o) {
  ++n;
  acc += (o.correct & ItemOutcome::kAcc) != 0;
  acc_norm += (o.correct & ItemOutcome::kAccNorm) != 0;
  acc_bytes += (o.correct & ItemOutcome::kAccBytes) != 0;
  exact_match += (o.correct & ItemOutcome::kExactMatch) != 0;
}

void TaskTally::merge(const TaskTally& other) {
  n += other.n;
  acc += other.acc;
  acc_norm += other.acc_norm;
  acc_bytes += other.acc_bytes;
  exact_match += other.exact_match;
}

std::vector<Metric> TaskTally::metrics() const {
  auto metric = [this](const char* name, std::int64_t k) { return Metric{name, count_mean(k, n), count_stderr(k, n)}; };
  return {metric("acc", acc), metric("acc_norm", acc_norm), metric("acc_bytes", acc_bytes),
          metric("exact_match", exact_match)};
}

}  // namespace ms::eval
