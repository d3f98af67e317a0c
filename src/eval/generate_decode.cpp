// The greedy decoding loop of one block. Layout of the block's KV cache (one preallocated buffer,
// columns = key slots):
//   [trunk: the prefix common to every prompt, computed once at batch 1 | each row's rest of the
//    prompt, left-padded to the widest | one column per decoding step]
// Each row attends to its own real keys at the positions they have in its own sequence (0 at its
// first prompt token, as lm-eval's left-padded HF generate with its attention mask), with
// Mistral's window applied to those positions; padding slots are never seen (a padding query
// sees only itself, so it stays finite). So each row computes what its prompt alone would,
// up to float rounding. Logits are computed for the last position only; rows that finish leave
// the batch (their cache rows are dropped).
//
// The host is not synced per token: each step's ids stay on the device and are fed back as they
// are, positions advance on the device, and forward() is told the bounds the host already knows
// (positions are known without the ids; greedy ids are in range by construction). The ids come
// back to the host every kSyncEvery tokens (and at max_gen_toks), where the stop conditions are
// checked token by token in order, exactly as per token. A row that stopped inside a chunk
// decodes on to the chunk's end; those tokens are discarded, and the row leaves the batch then.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>

#include "mergesweep/core/error.hpp"
#include "mergesweep/eval/generate.hpp"
#include "mergesweep/model/decoder.hpp"

namespace ms::eval {
namespace {

// visible [B, T, S]: query (row b, new column qcol0 + t, position qpos[b, t]) sees key slot s
// when the slot is real (kpos >= 0), not after it, and inside the window; and always itself.
at::Tensor visibility(const at::Tensor& kpos, const at::Tensor& qpos, std::int64_t qcol0, std::int64_t window) {
  const at::Tensor k = kpos.unsqueeze(1);  // [B, 1, S]
  const at::Tensor q = qpos.unsqueeze(2);  // [B, T, 1]
  at::Tensor vis = k.ge(0).logical_and(k.le(q));
  if (window > 0) vis = vis.logical_and((q - k).lt(window));
  const auto lopts = kpos.options();
  const at::Tensor scol = at::arange(kpos.size(1), lopts).view({1, 1, -1});
  const at::Tensor qcol = at::arange(qcol0, qcol0 + qpos.size(1), lopts).view({1, -1, 1});
  return vis.logical_or(scol.eq(qcol));
}

at::Tensor long_tensor(const std::vector<std::int64_t>& v, std::int64_t rows, std::int64_t cols,
                       const at::Device& device) {
  // A copy on every device (on the CPU a bare from_blob would alias `v`).
  return at::from_blob(const_cast<std::int64_t*>(v.data()), {rows, cols}, at::kLong).to(device, at::kLong, false, true);
}

// Greedy next ids [B] from hidden states [B, T, C]: the last position's logits in float32, the
// first maximum (torch.argmax).
at::Tensor next_ids(const model::Decoder& model, const at::Tensor& hidden) {
  return model.logits(hidden.select(1, hidden.size(1) - 1)).to(at::kFloat).argmax(-1);
}

// Tokens decoded between two reads on the host: at most this many wasted steps for a row that
// stops early, against one host sync (which drains the device's queue) per token.
constexpr std::size_t kSyncEvery = 8;

struct Row {
  std::size_t slot;                 // index into the caller's item list
  std::int64_t next_pos;            // position of the next token fed back
  std::vector<std::int32_t> tokens;
  bool done = false;
};

class BlockDecoder {
 public:
  BlockDecoder(const model::Decoder& model, const TaskPack& pack, const std::vector<std::size_t>& items,
               std::int64_t max_len)
      : model_(model), items_(items), spec_(pack.generation), stop_ids_(stop_token_set(pack, model)) {
    const std::int64_t max_ctx = max_len - spec_.max_gen_toks;
    for (const std::size_t i : items) {
      const auto& c = pack.items[i].context;
      const std::size_t keep = static_cast<std::size_t>(std::min<std::int64_t>(static_cast<std::int64_t>(c.size()), max_ctx));
      prompts_.emplace_back(c.end() - static_cast<std::ptrdiff_t>(keep), c.end());
    }
  }

  std::vector<Generation> run() {
    std::vector<at::Tensor> pending{prefill()};  // [B] ids per step, not yet read on the host
    std::vector<Generation> out(items_.size());
    std::int64_t generated = 1;  // every live row has decoded this many tokens (rows only leave)
    while (true) {
      if (pending.size() >= kSyncEvery || generated >= spec_.max_gen_toks) {
        if (!take(pending, out)) break;
        pending.clear();
        compact();
      }
      pending.push_back(step(pending.empty() ? last_ : pending.back()));
      ++generated;
    }
    return out;
  }

 private:
  const model::Decoder& model_;
  const std::vector<std::size_t>& items_;
  const GenerationSpec& spec_;
  std::vector<std::int32_t> stop_ids_;
  std::vector<std::vector<std::int64_t>> prompts_;
  std::vector<Row> rows_;  // live rows, in cache row order
  model::KvCache cache_;
  at::Tensor kpos_;        // [B, capacity] int64: position of each key slot, -1 for padding
  at::Tensor qpos_;        // [B, 1] int64 on the device: the position each row's next id takes
  at::Tensor last_;        // [B] the ids read by the last take(), as the device holds them

  std::int64_t trunk_length() const;
  at::Tensor prefill();
  bool take(const std::vector<at::Tensor>& pending, std::vector<Generation>& out);
  void take_one(Row& row, std::int32_t id, Generation& g) const;
  void compact();
  at::Tensor step(const at::Tensor& ids);
};

// The prefix every prompt shares, leaving each row at least its last prompt token.
std::int64_t BlockDecoder::trunk_length() const {
  std::size_t t = prompts_[0].size() - 1;
  for (const auto& p : prompts_) {
    t = std::min(t, p.size() - 1);
    std::size_t k = 0;
    while (k < t && p[k] == prompts_[0][k]) ++k;
    t = k;
  }
  return static_cast<std::int64_t>(t);
}

// Trunk once at batch 1, then every row's rest in one forward; returns the first greedy ids.
at::Tensor BlockDecoder::prefill() {
  const at::Device dev = model_.device();
  const std::int64_t B = static_cast<std::int64_t>(prompts_.size());
  const std::int64_t trunk = trunk_length();
  std::int64_t width = 0;
  for (const auto& p : prompts_) width = std::max(width, static_cast<std::int64_t>(p.size()) - trunk);
  const std::int64_t capacity = trunk + width + spec_.max_gen_toks - 1;
  cache_ = model_.empty_cache(B, capacity);
  kpos_ = at::full({B, capacity}, -1, at::TensorOptions().dtype(at::kLong).device(dev));
  if (trunk > 0) {
    model::KvCache shared;
    model::ForwardOptions fo;
    fo.cache = &shared;
    model_.forward(long_tensor(prompts_[0], 1, trunk, dev), fo);
    for (std::size_t l = 0; l < cache_.k.size(); ++l) {
      cache_.k[l].narrow(2, 0, trunk).copy_(shared.k[l]);
      cache_.v[l].narrow(2, 0, trunk).copy_(shared.v[l]);
    }
    cache_.filled = trunk;
    kpos_.narrow(1, 0, trunk).copy_(at::arange(trunk, kpos_.options()).unsqueeze(0));
  }
  // Rest of each prompt right-aligned; padding slots hold the row's last token at position -1.
  std::vector<std::int64_t> ids(static_cast<std::size_t>(B * width)), pos(ids.size(), -1);
  for (std::int64_t b = 0; b < B; ++b) {
    const auto& p = prompts_[static_cast<std::size_t>(b)];
    const std::int64_t n = static_cast<std::int64_t>(p.size());
    const std::int64_t pad = width - (n - trunk);
    for (std::int64_t c = 0; c < width; ++c) {
      const std::size_t at = static_cast<std::size_t>(b * width + c);
      ids[at] = c < pad ? p.back() : p[static_cast<std::size_t>(trunk + c - pad)];
      if (c >= pad) pos[at] = trunk + c - pad;
    }
    rows_.push_back({static_cast<std::size_t>(b), n, {}, false});
  }
  const at::Tensor qpos = long_tensor(pos, B, width, dev);
  kpos_.narrow(1, trunk, width).copy_(qpos);
  std::vector<std::int64_t> next_pos;
  for (const Row& row : rows_) next_pos.push_back(row.next_pos);
  qpos_ = long_tensor(next_pos, B, 1, dev);
  model::ForwardOptions fo;
  fo.cache = &cache_;
  fo.positions = qpos.clamp_min(0);
  fo.visible = visibility(kpos_.narrow(1, 0, trunk + width), qpos, trunk, model_.sliding_window());
  return next_ids(model_, model_.forward(long_tensor(ids, B, width, dev), fo));
}

// Reads the pending steps' ids on the host (one sync) and appends them to each live row in step
// order, up to the row's stop. Returns false when no row is left.
bool BlockDecoder::take(const std::vector<at::Tensor>& pending, std::vector<Generation>& out) {
  const at::Tensor steps = at::stack(pending, 1);  // [B, steps]
  last_ = pending.back();
  const at::Tensor host = steps.cpu().contiguous();
  const std::int64_t* ids = host.data_ptr<std::int64_t>();
  const auto n = static_cast<std::size_t>(host.size(1));
  bool any = false;
  for (std::size_t r = 0; r < rows_.size(); ++r) {
    Row& row = rows_[r];
    for (std::size_t j = 0; j < n && !row.done; ++j) take_one(row, static_cast<std::int32_t>(ids[r * n + j]), out[row.slot]);
    any = any || !row.done;
  }
  return any;
}

// One new id of a live row: a stop token, a stop string, or the length limit ends it.
void BlockDecoder::take_one(Row& row, std::int32_t id, Generation& g) const {
  if (std::binary_search(stop_ids_.begin(), stop_ids_.end(), id)) {
    g.stop = Generation::Stop::StopToken;
    row.done = true;
  } else {
    row.tokens.push_back(id);
    const std::string text = decoded_text(spec_, row.tokens);
    const bool hit = std::any_of(spec_.until.begin(), spec_.until.end(),
                                 [&](const std::string& u) { return !u.empty() && text.find(u) != std::string::npos; });
    g.stop = hit ? Generation::Stop::Until : Generation::Stop::Length;
    row.done = hit || static_cast<std::int64_t>(row.tokens.size()) >= spec_.max_gen_toks;
  }
  if (row.done) {
    g.tokens = row.tokens;
    g.text = generation_text(spec_, g.tokens);
  }
}

// Drops finished rows from the batch (cache rows, key positions).
void BlockDecoder::compact() {
  std::vector<std::int64_t> keep;
  for (std::size_t r = 0; r < rows_.size(); ++r)
    if (!rows_[r].done) keep.push_back(static_cast<std::int64_t>(r));
  if (keep.size() == rows_.size()) return;
  const at::Tensor idx = long_tensor(keep, static_cast<std::int64_t>(keep.size()), 1, kpos_.device()).view({-1});
  cache_.keep_rows(idx);
  kpos_ = kpos_.index_select(0, idx);
  qpos_ = qpos_.index_select(0, idx);
  last_ = last_.index_select(0, idx);
  std::vector<Row> live;
  live.reserve(keep.size());
  for (const std::int64_t r : keep) live.push_back(std::move(rows_[static_cast<std::size_t>(r)]));
  rows_ = std::move(live);
}

// One decoding step for every row of the batch (live, or stopped inside this chunk): `ids` [B],
// on the device, at each row's next position. Nothing here reads the device.
at::Tensor BlockDecoder::step(const at::Tensor& ids) {
  const std::int64_t B = static_cast<std::int64_t>(rows_.size());
  std::int64_t max_pos = 0;  // known on the host: positions do not depend on the ids
  for (Row& row : rows_) max_pos = std::max(max_pos, row.next_pos++);
  const std::int64_t col = cache_.filled;
  kpos_.narrow(1, col, 1).copy_(qpos_);
  model::ForwardOptions fo;
  fo.cache = &cache_;
  fo.positions = qpos_;
  fo.max_position = max_pos;
  fo.ids_checked = true;  // argmaxes over this model's vocab_size logits
  fo.visible = visibility(kpos_.narrow(1, 0, col + 1), qpos_, col, model_.sliding_window());
  const at::Tensor next = next_ids(model_, model_.forward(ids.view({B, 1}), fo));
  qpos_ = qpos_ + 1;
  return next;
}

}  // namespace

std::vector<Generation> generate_items(const model::Decoder& model, const TaskPack& pack,
                                       const std::vector<std::size_t>& items, const ScoreOptions& opts) {
  const std::int64_t max_len = check_generation_pack(pack, model, opts);
  for (const std::size_t i : items) {
    if (i >= pack.items.size())
      fail(pack.path, "", "item " + std::to_string(i) + " outside the pack's " + std::to_string(pack.items.size()) +
                              " items");
    if (pack.items[i].context.empty())
      fail(pack.path, "context_tokens", "item " + std::to_string(i) + ": an empty prompt (nothing to generate from)");
  }
  if (items.empty()) return {};
  at::NoGradGuard no_grad;
  return BlockDecoder(model, pack, items, max_len).run();
}

}  // namespace ms::eval
