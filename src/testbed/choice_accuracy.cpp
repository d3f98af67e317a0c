// The testbed's own multiple-choice check (testbed.json records it for every model): every
// (context + continuation) scored by one causal forward, no cache, no truncation (testbed
// sequences are far shorter than the model's context).
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>  // at::NoGradGuard (not via ATen.h in torch 2.x)

#include "mergesweep/eval/task_pack.hpp"
#include "trainer.hpp"

namespace ms::testbed {

double choice_accuracy(const Params& params, const io::ModelConfig& cfg, const eval::TaskPack& pack) {
  at::NoGradGuard no_grad;
  struct Req {
    std::vector<std::int32_t> seq;
    std::size_t cont_start;
  };
  std::vector<Req> reqs;
  for (const auto& item : pack.items) {
    for (const auto& ch : item.choices) {
      Req r{item.context, item.context.size()};
      r.seq.insert(r.seq.end(), ch.continuation.begin(), ch.continuation.end());
      reqs.push_back(std::move(r));
    }
  }
  std::vector<double> ll(reqs.size(), 0.0);
  const std::size_t chunk = 512;
  for (std::size_t begin = 0; begin < reqs.size(); begin += chunk) {
    const std::size_t end = std::min(reqs.size(), begin + chunk);
    std::size_t longest = 0;
    for (std::size_t i = begin; i < end; ++i) longest = std::max(longest, reqs[i].seq.size());
    const auto B = static_cast<std::int64_t>(end - begin), T = static_cast<std::int64_t>(longest) - 1;
    at::Tensor ids = at::zeros({B, T}, at::kLong);
    auto ia = ids.accessor<std::int64_t, 2>();
    for (std::size_t i = begin; i < end; ++i) {
      for (std::size_t t = 0; t + 1 < reqs[i].seq.size(); ++t) ia[static_cast<std::int64_t>(i - begin)][static_cast<std::int64_t>(t)] = reqs[i].seq[t];
    }
    at::Tensor logp = at::log_softmax(model_logits(params, cfg, ids).to(at::kFloat), -1).contiguous();
    auto la = logp.accessor<float, 3>();
    for (std::size_t i = begin; i < end; ++i) {
      double s = 0;
      for (std::size_t t = reqs[i].cont_start; t < reqs[i].seq.size(); ++t)
        s += la[static_cast<std::int64_t>(i - begin)][static_cast<std::int64_t>(t - 1)][reqs[i].seq[t]];
      ll[i] = s;
    }
  }
  std::size_t k = 0, correct = 0;
  for (const auto& item : pack.items) {
    std::size_t best = 0;
    for (std::size_t c = 1; c < item.choices.size(); ++c) {
      if (ll[k + c] > ll[k + best]) best = c;
    }
    if (static_cast<std::int32_t>(best) == item.gold) ++correct;
    k += item.choices.size();
  }
  return pack.items.empty() ? 0.0 : static_cast<double>(correct) / static_cast<double>(pack.items.size());
}

}  // namespace ms::testbed
