// Helpers shared by the evaluation tests: deterministic ids, lm-eval's computation for one
// request written out plainly, and a group of two ranks (threads) summing through one buffer.
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "mergesweep/eval/evaluate.hpp"
#include "mergesweep/model/decoder.hpp"

namespace ms::eval::test_util {

// Deterministic pseudo-random ids (a simple LCG: the tests need variety, not quality).
struct Lcg {
  std::uint64_t s;
  std::int32_t next(std::int32_t n) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<std::int32_t>((s >> 33) % static_cast<std::uint64_t>(n));
  }
};

// lm-eval's computation for one (context, continuation) request: the input
// (ctx + cont)[-(max_length+1):][:-1] in its own forward, a full log_softmax, the last |cont|
// positions gathered. Returns (log-likelihood, is_greedy).
inline std::pair<double, bool> naive_loglik(const model::Decoder& m, const std::vector<std::int32_t>& ctx,
                                            const std::vector<std::int32_t>& cont, std::int64_t max_len) {
  at::NoGradGuard g;
  std::vector<std::int64_t> whole(ctx.begin(), ctx.end());
  whole.insert(whole.end(), cont.begin(), cont.end());
  const std::int64_t start = std::max<std::int64_t>(0, static_cast<std::int64_t>(whole.size()) - (max_len + 1));
  std::vector<std::int64_t> inp(whole.begin() + start, whole.end() - 1);
  const auto n = static_cast<std::int64_t>(inp.size());
  at::Tensor ids = at::from_blob(inp.data(), {1, n}, at::kLong).clone();
  at::Tensor logp = at::log_softmax(m.logits(m.forward(ids)).to(at::kFloat), -1)[0];  // [n, V]
  const auto k = static_cast<std::int64_t>(cont.size());
  at::Tensor sl = logp.slice(0, n - k, n);
  at::Tensor tgt = at::tensor(std::vector<std::int64_t>(cont.begin(), cont.end()), at::kLong);
  const double ll = sl.gather(1, tgt.unsqueeze(1)).sum().item<double>();
  const bool greedy = sl.argmax(1).eq(tgt).all().item<bool>();
  return {ll, greedy};
}

// Two ranks as two threads: each sum waits for both contributions, then both read the total.
class TwoRankSum {
 public:
  template <class T>
  void sum(T* data, std::size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    const std::uint64_t gen = gen_;
    if (arrived_ == 0) buf_.assign(n, 0.0);
    for (std::size_t i = 0; i < n; ++i) buf_[i] += static_cast<long double>(data[i]);
    if (++arrived_ == 2) {
      result_ = buf_;
      arrived_ = 0;
      ++gen_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return gen_ != gen; });
    }
    for (std::size_t i = 0; i < n; ++i) data[i] = static_cast<T>(result_[i]);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<long double> buf_, result_;
  int arrived_ = 0;
  std::uint64_t gen_ = 0;
};

// evaluate() run by a group of two ranks (two threads summing through a TwoRankSum): what each
// rank reports, to compare with one rank alone.
inline std::array<EvalResult, 2> evaluate_as_two_ranks(const model::Decoder& m, const std::vector<TaskPack>& tasks,
                                                      const std::vector<ProbePack>& probes, const EvalOptions& o) {
  TwoRankSum group;
  std::array<EvalResult, 2> two;
  std::vector<std::thread> ranks;
  for (int r = 0; r < 2; ++r) {
    ranks.emplace_back([&, r] {
      EvalShare s;
      s.rank = r;
      s.size = 2;
      s.sum_int = [&](std::int64_t* d, std::size_t n) { group.sum(d, n); };
      s.sum_double = [&](double* d, std::size_t n) { group.sum(d, n); };
      two[static_cast<std::size_t>(r)] = evaluate(m, tasks, probes, o, s);
    });
  }
  for (auto& t : ranks) t.join();
  return two;
}

}  // namespace ms::eval::test_util
