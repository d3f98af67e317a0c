// The testbed's own greedy decoder (testbed.json records every model's exact match on the
// generation packs with it): every step re-runs one causal forward over the whole batch, no
// cache. Sequences are right-padded, so under the causal mask the padding after a sequence's last
// token never reaches the logits read at that token: each item decodes as if alone.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>  // at::NoGradGuard (not via ATen.h in torch 2.x)

#include <algorithm>

#include "mergesweep/core/error.hpp"
#include "mergesweep/eval/task_pack.hpp"
#include "trainer.hpp"

namespace ms::testbed {

std::vector<std::vector<std::int32_t>> greedy_generate(const Params& params, const io::ModelConfig& cfg,
                                                       const eval::TaskPack& pack) {
  at::NoGradGuard no_grad;
  const auto& spec = pack.generation;
  const std::size_t n = pack.items.size();
  std::vector<std::vector<std::int32_t>> seqs(n), out(n);
  std::vector<bool> done(n, false);
  std::size_t longest_prompt = 0;
  for (std::size_t i = 0; i < n; ++i) {
    seqs[i] = pack.items[i].context;
    longest_prompt = std::max(longest_prompt, seqs[i].size());
  }
  if (longest_prompt + static_cast<std::size_t>(spec.max_gen_toks) > static_cast<std::size_t>(cfg.max_position_embeddings))
    fail(pack.path, "max_gen_toks", "prompt + generation exceed the model's " +
                                        std::to_string(cfg.max_position_embeddings) + " positions");
  for (std::int64_t step = 0; step < spec.max_gen_toks; ++step) {
    std::vector<std::size_t> live;
    std::size_t T = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (!done[i]) {
        live.push_back(i);
        T = std::max(T, seqs[i].size());
      }
    }
    if (live.empty()) break;
    at::Tensor ids = at::zeros({static_cast<std::int64_t>(live.size()), static_cast<std::int64_t>(T)}, at::kLong);
    auto ia = ids.accessor<std::int64_t, 2>();
    for (std::size_t r = 0; r < live.size(); ++r) {
      const auto& s = seqs[live[r]];
      for (std::size_t t = 0; t < s.size(); ++t) ia[static_cast<std::int64_t>(r)][static_cast<std::int64_t>(t)] = s[t];
    }
    const at::Tensor logits = model_logits(params, cfg, ids).to(at::kFloat).contiguous();
    auto la = logits.accessor<float, 3>();
    for (std::size_t r = 0; r < live.size(); ++r) {
      const std::size_t i = live[r];
      const auto row = static_cast<std::int64_t>(r), last = static_cast<std::int64_t>(seqs[i].size()) - 1;
      std::int32_t best = 0;  // argmax, the lowest id on ties (torch.argmax's and HF greedy's rule)
      for (std::int64_t v = 1; v < logits.size(2); ++v) {
        if (la[row][last][v] > la[row][last][best]) best = static_cast<std::int32_t>(v);
      }
      const auto& stops = spec.stop_token_ids;
      if (std::find(stops.begin(), stops.end(), best) != stops.end()) {
        done[i] = true;
        continue;
      }
      seqs[i].push_back(best);
      out[i].push_back(best);
    }
  }
  return out;
}

}  // namespace ms::testbed
