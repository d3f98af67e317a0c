// Batched scoring: the sequences of a range of items packed into prefix trees (prefix_tree.hpp).
// The trunk (the prefix every sequence shares, such as a few-shot header) runs once into a KV
// cache; then rows of tree-packed tokens run in padded batches, bucketed by length, each token
// attending to the trunk and to its own ancestors in the tree at its sequence position. A token
// therefore sees exactly the keys and positions it has in lm-eval's own input, so log-likelihoods
// are lm-eval's up to float rounding, while every shared token is computed once.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <numeric>

#include "mergesweep/model/decoder.hpp"
#include "prefix_tree.hpp"
#include "scoring_detail.hpp"

namespace ms::eval::detail {
namespace {

// Tree nodes per row: a row's attention is [row, trunk + row], so wider rows waste more on masked
// scores while narrower ones share less. Constants, not options: results depend on the packing.
constexpr std::int64_t kRowTokens = 512;
// A shorter common prefix is left in the rows (a separate trunk forward would cost more).
constexpr std::int64_t kMinTrunk = 8;

struct Request {
  std::vector<ScoredSeq> seqs;
  std::vector<Sink> sinks;
  std::vector<std::pair<std::size_t, std::size_t>> groups;  // per item
};

// The sequences lm-eval scores, minus choices too long to share their context (scored alone).
Request collect(const model::Decoder& model, const TaskPack& pack, std::size_t begin, std::size_t end,
                std::int64_t max_len, std::vector<ItemScore>& out) {
  Request r;
  for (std::size_t i = begin; i < end; ++i) {
    const TaskItem& item = pack.items[i];
    const std::size_t first = r.seqs.size();
    for (std::size_t c = 0; c < item.choices.size(); ++c) {
      const auto& cont = item.choices[c].continuation;
      const auto& ctx = choice_context(item, c);  // per-choice contexts simply start other branches
      if (static_cast<std::int64_t>(ctx.size() + cont.size()) > max_len + 1) {
        score_alone(model, item, c, max_len, model.device(), out[i - begin]);
        continue;
      }
      ScoredSeq s;
      s.tokens = ctx;
      s.tokens.insert(s.tokens.end(), cont.begin(), cont.end() - 1);
      s.first_scored = ctx.size() - 1;
      s.targets = cont;
      r.seqs.push_back(std::move(s));
      r.sinks.push_back({&out[i - begin], c});
    }
    if (r.seqs.size() > first) r.groups.emplace_back(first, r.seqs.size());
  }
  return r;
}

// Which keys each node of a batch of rows sees: [B, W, trunk + W]. Every trunk key and the node's
// ancestors (itself included), within the sliding window; a padding node sees only itself.
at::Tensor visibility(const std::vector<const PackedRow*>& rows, std::int64_t width, std::int64_t trunk,
                      std::int64_t window) {
  const std::int64_t B = static_cast<std::int64_t>(rows.size()), S = trunk + width;
  at::Tensor vis = at::zeros({B, width, S}, at::kBool);
  bool* v = vis.data_ptr<bool>();
  for (std::int64_t b = 0; b < B; ++b) {
    const PackedRow& row = *rows[static_cast<std::size_t>(b)];
    for (std::int64_t p = 0; p < width; ++p) {
      bool* line = v + (b * width + p) * S;
      if (p >= row.size()) {
        line[trunk + p] = true;
        continue;
      }
      const std::int64_t pos = row.positions[static_cast<std::size_t>(p)];
      for (std::int64_t k = 0; k < trunk; ++k) line[k] = window <= 0 || pos - k < window;
      for (std::int64_t q = p; q >= 0; q = row.parent[static_cast<std::size_t>(q)])
        line[trunk + q] = window <= 0 || pos - row.positions[static_cast<std::size_t>(q)] < window;
    }
  }
  return vis;
}

// Forward batches: rows longest first (stable), each batch at most `budget` padded tokens.
std::vector<std::vector<const PackedRow*>> batches(const PackedBlock& block, std::int64_t budget) {
  std::vector<std::size_t> order(block.rows.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return block.rows[a].size() > block.rows[b].size(); });
  std::vector<std::vector<const PackedRow*>> out;
  std::int64_t width = 0;
  for (std::size_t i : order) {
    const PackedRow* row = &block.rows[i];
    if (out.empty() || (static_cast<std::int64_t>(out.back().size()) + 1) * width > budget) {
      out.emplace_back();
      width = row->size();  // the longest of its batch
    }
    out.back().push_back(row);
  }
  return out;
}

void run_batch(const model::Decoder& model, const std::vector<const PackedRow*>& rows, const model::KvCache& trunk,
               std::int64_t trunk_len, const Request& req) {
  const std::int64_t B = static_cast<std::int64_t>(rows.size()), W = rows.front()->size();
  at::Tensor ids = at::zeros({B, W}, at::kLong), pos = at::zeros({B, W}, at::kLong);
  std::vector<std::int64_t> index, targets, lengths;
  std::vector<Sink> sinks;
  for (std::int64_t b = 0; b < B; ++b) {
    const PackedRow& row = *rows[static_cast<std::size_t>(b)];
    std::copy(row.tokens.begin(), row.tokens.end(), ids.data_ptr<std::int64_t>() + b * W);
    std::copy(row.positions.begin(), row.positions.end(), pos.data_ptr<std::int64_t>() + b * W);
    for (const auto& [seq, nodes] : row.scored) {
      for (std::int64_t n : nodes) index.push_back(b * W + n);
      targets.insert(targets.end(), req.seqs[seq].targets.begin(), req.seqs[seq].targets.end());
      lengths.push_back(static_cast<std::int64_t>(nodes.size()));
      sinks.push_back(req.sinks[seq]);
    }
  }
  model::ForwardOptions fo;
  model::KvCache cache;
  if (trunk_len > 0) {
    cache = trunk.expand(B);
    fo.cache = &cache;
  }
  fo.positions = pos;
  fo.visible = visibility(rows, W, trunk_len, model.sliding_window());
  const at::Device device = model.device();
  const at::Tensor hidden = model.forward(ids.to(device), fo);  // [B, W, H]
  const at::Tensor flat = hidden.reshape({B * W, hidden.size(2)});
  const at::Tensor idx =
      at::from_blob(index.data(), {static_cast<std::int64_t>(index.size())}, at::kLong).to(device);
  auto [lp, gr] = gather_logprobs(model, flat.index_select(0, idx), targets);
  accumulate(lp, gr, sinks, lengths);
}

}  // namespace

void score_packed(const model::Decoder& model, const TaskPack& pack, std::size_t begin, std::size_t end,
                  std::int64_t max_len, const ScoreOptions& opts, std::vector<ItemScore>& out) {
  const Request req = collect(model, pack, begin, end, max_len, out);
  if (req.seqs.empty()) return;
  const PackedBlock block = pack_sequences(req.seqs, req.groups, kRowTokens, kMinTrunk);
  model::KvCache trunk;
  const std::int64_t trunk_len = static_cast<std::int64_t>(block.trunk.size());
  if (trunk_len > 0) {
    model::ForwardOptions fo;
    fo.cache = &trunk;
    model.forward(ids_tensor({block.trunk}, trunk_len).to(model.device()), fo);
  }
  for (const auto& rows : batches(block, std::max<std::int64_t>(1, opts.batch_tokens)))
    run_batch(model, rows, trunk, trunk_len, req);
}

}  // namespace ms::eval::detail
