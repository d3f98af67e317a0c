// Properties every implementation of the methods must have, on random tensors; the exact
// reference values are in test_parity.cpp.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "merge/kernels.hpp"
#include "mergesweep/merge/merge.hpp"
#include "mergesweep/merge/model_stats.hpp"

namespace ms::merge {
namespace {

MergeRequest request(const char* method, std::size_t members, std::map<std::string, std::string> params = {},
                     double density = 1.0) {
  MergeRequest r;
  r.method = find_method(method);
  r.params = validate_params(r.method->params, params, "", "");
  for (std::size_t i = 0; i < members; ++i) r.members.push_back({"m", static_cast<int>(i), 1.0, density});
  return r;
}

std::vector<at::Tensor> random_taus(std::size_t n, std::vector<std::int64_t> shape, std::uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<at::Tensor> t;
  for (std::size_t i = 0; i < n; ++i) t.push_back(at::randn(shape, gen, at::kFloat) * 0.01);
  return t;
}

at::Tensor random_base(std::vector<std::int64_t> shape) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(99);
  return at::randn(shape, gen, at::kFloat) * 0.02;
}

const GlobalStats kNoStats;
const char* kMatrix = "model.layers.0.self_attn.q_proj.weight";

TEST(MergeProperties, TaskArithmeticWithOneModelReturnsThatModel) {
  const auto base = random_base({16, 8});
  const auto tau = random_taus(1, {16, 8}, 1);
  const auto out = merge_tensor(request("task_arithmetic", 1), kNoStats, kMatrix, base, tau);
  EXPECT_TRUE(out.equal(base + tau[0]));
}

TEST(MergeProperties, LinearWithEqualWeightsIsTheMean) {
  const auto base = random_base({32});
  const auto tau = random_taus(3, {32}, 2);
  const auto out = merge_tensor(request("linear", 3), kNoStats, "x", base, tau);
  const auto expected = (3 * base + tau[0] + tau[1] + tau[2]) / 3;
  EXPECT_TRUE(out.allclose(expected, 0, 1e-7));
}

TEST(MergeProperties, SlerpEndsAreTheTwoModels) {
  const auto base = random_base({8, 8});
  const auto tau = random_taus(1, {8, 8}, 3);
  EXPECT_TRUE(merge_tensor(request("slerp", 1, {{"t", "0"}}), kNoStats, "x", base, tau).allclose(base, 0, 1e-7));
  EXPECT_TRUE(merge_tensor(request("slerp", 1, {{"t", "1"}}), kNoStats, "x", base, tau).allclose(base + tau[0], 0, 1e-6));
}

TEST(MergeProperties, TiesTrimKeepsExactlyTheLargestDensityShare) {
  const auto base = at::zeros({100, 10});
  const auto tau = random_taus(1, {100, 10}, 4);
  const auto out = merge_tensor(request("ties", 1, {}, 0.1), kNoStats, "x", base, tau);
  EXPECT_EQ(out.ne(0).sum().item<std::int64_t>(), 100);  // ⌊0.1 · 1000⌋
  const float smallest_kept = out.abs().masked_select(out.ne(0)).min().item<float>();
  const float largest_dropped = tau[0].abs().masked_select(out.eq(0)).max().item<float>();
  EXPECT_GT(smallest_kept, largest_dropped);
  EXPECT_TRUE(out.masked_select(out.ne(0)).equal(tau[0].masked_select(out.ne(0))));
}

// Breadcrumbs keeps the band of ranks [n_bot, n_bot + target) of |τ| in ascending order, equal
// magnitudes in index order: against a stable sort, on a τ of a few magnitude levels (every band
// edge falls inside a run of ties) and on random values.
TEST(MergeProperties, BreadcrumbsBandIsTheStableSortsBand) {
  for (const bool ties : {true, false}) {
    for (const auto& [density, gamma] : std::vector<std::pair<double, double>>{{0.3, 0.1}, {0.5, 0.01}, {0.9, 0.3}}) {
      const auto raw = random_taus(1, {64, 48}, 7)[0];
      const at::Tensor tau = ties ? (raw * 300).round() / 300 : raw;  // ties: ~20 distinct magnitudes
      const auto r = request("breadcrumbs", 1, {{"gamma", std::to_string(gamma)}}, density);
      const at::Tensor out = merge_tensor(r, kNoStats, kMatrix, at::zeros_like(tau), {tau});
      const std::int64_t n = tau.numel();
      const auto target = static_cast<std::int64_t>(density * static_cast<double>(n));
      const std::int64_t n_bot = std::max<std::int64_t>(0, n - target - static_cast<std::int64_t>(gamma * static_cast<double>(n)));
      const at::Tensor order = std::get<1>(at::sort(tau.reshape({-1}).abs(), /*stable=*/true, 0, false));
      at::Tensor mask = at::zeros({n});
      mask.index_fill_(0, order.slice(0, n_bot, std::min(n, n_bot + target)), 1.0);
      EXPECT_TRUE(out.equal(tau * mask.view(tau.sizes()))) << "ties " << ties << " density " << density;
      EXPECT_EQ(out.ne(0).sum().item<std::int64_t>(), (mask.view(tau.sizes()) * tau).ne(0).sum().item<std::int64_t>());
    }
  }
}

TEST(MergeProperties, ModelStockWithIdenticalTaskVectorsTakesThem) {
  const auto base = random_base({12, 6});
  const auto t = random_taus(1, {12, 6}, 5)[0];
  const auto out = merge_tensor(request("model_stock", 3), kNoStats, "x", base, {t, t, t});
  EXPECT_TRUE(out.allclose(base + t, 0, 1e-6));
}

at::Tensor svdvals(const at::Tensor& m) { return std::get<1>(at::linalg_svd(m, false)); }

TEST(MergeProperties, IsoCOutputSpectrumIsFlat) {
  const auto base = random_base({24, 16});
  const auto tau = random_taus(3, {24, 16}, 6);
  const auto delta = merge_tensor(request("iso_c", 3), kNoStats, kMatrix, base, tau) - base;
  const auto s = svdvals(delta);
  const auto expected = svdvals(tau[0] + tau[1] + tau[2]).mean();
  EXPECT_TRUE(s.allclose(expected.expand_as(s), 1e-4, 1e-6)) << s;
  // Embeddings and vectors get the plain mean.
  const auto emb = merge_tensor(request("iso_c", 3), kNoStats, "model.embed_tokens.weight", base, tau);
  EXPECT_TRUE(emb.allclose(base + (tau[0] + tau[1] + tau[2]) / 3, 0, 1e-7));
}

TEST(MergeProperties, TsvMBlocksAreOrthogonal) {
  const auto base = at::zeros({16, 12});
  // One task: the top r components are the whole matrix, so TSV-M returns the task vector.
  const auto one = random_taus(1, {16, 12}, 7);
  EXPECT_TRUE(merge_tensor(request("tsv_m", 1), kNoStats, kMatrix, base, one).allclose(one[0], 1e-4, 1e-6));
  // Two tasks: after orthogonalization the singular values of the merge are exactly the kept
  // per-task singular values (k = 6 each).
  const auto two = random_taus(2, {16, 12}, 8);
  const auto delta = merge_tensor(request("tsv_m", 2), kNoStats, kMatrix, base, two);
  const auto kept = at::cat({svdvals(two[0]).narrow(0, 0, 6), svdvals(two[1]).narrow(0, 0, 6)});
  const auto sorted = std::get<0>(kept.sort(0, /*descending=*/true));
  EXPECT_TRUE(svdvals(delta).allclose(sorted, 1e-4, 1e-6));
}

TEST(MergeProperties, SubspaceBoostingRaisesTheTailOfTheSpectrum) {
  const auto base = at::zeros({20, 10});
  const auto tau = random_taus(2, {20, 10}, 9);
  const auto ta = merge_tensor(request("task_arithmetic", 2), kNoStats, kMatrix, base, tau);
  const auto sb1 = merge_tensor(request("task_arithmetic_sb", 2, {{"beta", "1"}}), kNoStats, kMatrix, base, tau);
  EXPECT_TRUE(sb1.allclose(ta, 1e-4, 1e-6));  // β = 1 boosts nothing
  const auto sb0 = merge_tensor(request("task_arithmetic_sb", 2, {{"beta", "0"}}), kNoStats, kMatrix, base, tau);
  const auto s = svdvals(sb0);
  EXPECT_TRUE(s.allclose(svdvals(ta)[0].expand_as(s), 1e-4, 1e-6));  // β = 0 lifts all to σ₀
  // Only attention/MLP weights are boosted.
  const auto other = merge_tensor(request("task_arithmetic_sb", 2, {{"beta", "0"}}), kNoStats, "lm_head.weight", base, tau);
  EXPECT_TRUE(other.equal(ta));
}

// The fused single-pass kernels are the tensor-op formulas, bitwise (same float ops, same order).
TEST(FusedKernels, TaskArithmeticIntoIsTheTensorOpFormBitwise) {
  const auto base = random_base({257, 33});
  const auto tau = random_taus(5, {257, 33}, 31);
  std::vector<const at::Tensor*> ptrs;
  for (const auto& t : tau) ptrs.push_back(&t);
  const std::vector<double> w = {0.3, 0.1, 0.25, 0.2, 0.15};
  for (bool normalize : {false, true}) {
    at::Tensor fused = at::empty_like(base);
    kernels::task_arithmetic_into(fused, base, ptrs, w, normalize, 0.7);
    const auto parts = kernels::weighted_sum(tau, w, normalize);
    EXPECT_TRUE(fused.equal(base + parts.normalized() * 0.7)) << normalize;
  }
  const auto bf = random_base({1000}).to(at::kBFloat16);
  EXPECT_TRUE(kernels::to_float32(bf).equal(bf.to(at::kFloat)));
  const auto f = random_base({10});
  EXPECT_NE(kernels::to_float32(f).data_ptr(), f.data_ptr());  // always a copy
}

// The cheaper exact form (Gram matrix + symmetric eigensolver) against the plain SVD form.
TEST(SpectralForms, GramFormEqualsThePlainSvdForm) {
  for (auto shape : std::vector<std::vector<std::int64_t>>{{64, 64}, {96, 40}, {40, 96}}) {
    const auto taus = random_taus(3, shape, 21);
    const auto sum = taus[0] + taus[1] + taus[2];
    // Float32 tolerance relative to the output's scale (the SVD form itself is float32).
    const auto iso_plain = kernels::iso_c_delta_svd(sum);
    EXPECT_LE((kernels::iso_c_delta(taus) - iso_plain).abs().max().item<double>(),
              4e-6 * iso_plain.abs().max().item<double>());
    for (double beta : {0.0, 0.2, 0.7}) {
      const auto sb_plain = kernels::subspace_boost_svd(sum, beta);
      EXPECT_LE((kernels::subspace_boost(sum, beta) - sb_plain).abs().max().item<double>(),
                4e-6 * sb_plain.abs().max().item<double>())
          << beta;
    }
  }
  // Ill-conditioned: the Gram form steps aside and the SVD form runs (results still agree).
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  const auto u = std::get<0>(at::linalg_qr(at::randn({32, 32}, gen, at::kFloat)));
  const auto s = at::logspace(0, -6, 32, 10.0, at::kFloat);
  const auto bad = at::matmul(u * s.unsqueeze(0), u.t());
  EXPECT_TRUE(kernels::subspace_boost(bad, 0.2).allclose(kernels::subspace_boost_svd(bad, 0.2), 1e-4, 1e-6));
}

TEST(Dare, MaskIsAPureFunctionOfItsInputsWhateverTheSharding) {
  const auto whole = dare_keep_mask(1, 2, 3, "t", 0, 1000, 0.3);
  const auto halves = at::cat({dare_keep_mask(1, 2, 3, "t", 0, 400, 0.3), dare_keep_mask(1, 2, 3, "t", 400, 600, 0.3)});
  EXPECT_TRUE(whole.equal(halves));
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const auto one_thread = dare_keep_mask(1, 2, 3, "t", 0, 1000, 0.3);
  at::set_num_threads(threads);
  EXPECT_TRUE(whole.equal(one_thread));
  EXPECT_FALSE(whole.equal(dare_keep_mask(1, 2, 4, "t", 0, 1000, 0.3)));  // another checkpoint
  EXPECT_FALSE(whole.equal(dare_keep_mask(1, 2, 3, "u", 0, 1000, 0.3)));  // another tensor
  EXPECT_FALSE(whole.equal(dare_keep_mask(7, 2, 3, "t", 0, 1000, 0.3)));  // another seed
}

TEST(Dare, DropRateAndRescaleAreRight) {
  const std::int64_t n = 1 << 20;
  for (double d : {0.1, 0.5, 0.9}) {
    const double kept = dare_keep_mask(0, 0, 0, "w", 0, n, d).mean().item<double>();
    const double sigma = std::sqrt(d * (1 - d) / n);
    EXPECT_NEAR(kept, d, 5 * sigma) << d;
    // dare_linear of one all-ones task vector: kept entries are 1/d, so the mean stays 1.
    const auto out = merge_tensor(request("dare_linear", 1, {}, d), kNoStats, "w", at::zeros({n}), {at::ones({n})});
    EXPECT_NEAR(out.mean().item<double>(), 1.0, 5 * sigma / d) << d;
    EXPECT_NEAR(out.max().item<double>(), 1.0 / d, 1e-5);
  }
}

// Two "ranks" in threads, each holding half the tensors; the reducer sums their contributions
// like MPI_Allreduce: both deposit, wait for each other, read the sum, wait again.
class TwoPartyReducer {
 public:
  class Side final : public Reducer {
   public:
    Side(TwoPartyReducer& r, int id) : r_(r), id_(id) {}
    void allreduce_sum(std::int64_t* d, std::size_t n) override { r_.exchange(id_, d, n); }
    void allreduce_sum(double* d, std::size_t n) override { r_.exchange(id_, d, n); }

   private:
    TwoPartyReducer& r_;
    int id_;
  };
  template <typename T>
  void exchange(int id, T* d, std::size_t n) {
    slot_[id].assign(d, d + n);
    barrier();
    for (std::size_t i = 0; i < n; ++i) d[i] = static_cast<T>(slot_[0].at(i) + slot_[1].at(i));
    barrier();
  }

 private:
  void barrier() {
    std::unique_lock<std::mutex> lock(mu_);
    const std::uint64_t gen = generation_;
    if (++arrived_ == 2) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return generation_ != gen; });
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<double> slot_[2];
  int arrived_ = 0;
  std::uint64_t generation_ = 0;
};

class MapSource final : public TaskVectorSource {
 public:
  std::vector<std::string> names;
  std::map<std::string, at::Tensor> base_;
  std::vector<std::map<std::string, at::Tensor>> tau_;
  const std::vector<std::string>& tensor_names() const override { return names; }
  at::Tensor base(const std::string& n) override { return base_.at(n); }
  at::Tensor tau(std::size_t m, const std::string& n) override { return tau_[m].at(n); }
};

TEST(GlobalTrim, ThresholdIsTheExactOrderStatisticAndShardingDoesNotChangeIt) {
  MapSource all, left, right;
  all.tau_.resize(2);
  left.tau_.resize(2);
  right.tau_.resize(2);
  for (int t = 0; t < 5; ++t) {
    const std::string name = "t" + std::to_string(t);
    const auto taus = random_taus(2, {37 + t, 11}, 100 + t);
    for (auto* s : {&all, t < 2 ? &left : &right}) {
      s->names.push_back(name);
      s->base_[name] = at::zeros({37 + t, 11});
      for (int m = 0; m < 2; ++m) s->tau_[m][name] = taus[m];
    }
  }
  auto r = request("ties", 2, {{"trim", "global"}}, 0.2);
  LocalReducer local;
  const GlobalStats g = compute_global_stats(r, all, local);
  for (int m = 0; m < 2; ++m) {
    std::vector<at::Tensor> flat;
    for (const auto& n : all.names) flat.push_back(all.tau_[m].at(n).abs().flatten());
    const auto v = at::cat(flat);
    const std::int64_t total = v.numel(), keep = static_cast<std::int64_t>(0.2 * static_cast<double>(total));
    const float kth = std::get<0>(v.kthvalue(total - keep)).item<float>();
    EXPECT_EQ(g.trim_threshold[m], kth);
    // As the paper's code: threshold = kthvalue(P − keep) with a >= mask, which keeps keep + 1.
    EXPECT_EQ((v >= kth).sum().item<std::int64_t>(), keep + 1);
  }
  TwoPartyReducer shared;
  TwoPartyReducer::Side a(shared, 0), b(shared, 1);
  GlobalStats ga, gb;
  std::thread ta([&] { ga = compute_global_stats(r, left, a); });
  std::thread tb([&] { gb = compute_global_stats(r, right, b); });
  ta.join();
  tb.join();
  EXPECT_EQ(ga.trim_threshold, g.trim_threshold);
  EXPECT_EQ(gb.trim_threshold, g.trim_threshold);
  EXPECT_EQ(ga.majority_sign, g.majority_sign);
}

TEST(ModelStats, DistanceFromBaseAndCosines) {
  const auto tau = random_taus(2, {10, 10}, 11);
  std::map<std::string, at::Tensor> base{{"model.layers.0.mlp.up_proj.weight", at::zeros({10, 10})},
                                         {"model.norm.weight", at::zeros({10, 10})}};
  std::map<std::string, at::Tensor> merged{{"model.layers.0.mlp.up_proj.weight", tau[0]}, {"model.norm.weight", tau[1]}};
  LocalReducer local;
  const auto st = merge_distance(merged, base, local);
  EXPECT_NEAR(st.l2_by_kind.at("mlp"), tau[0].norm().item<double>(), 1e-6);
  EXPECT_NEAR(st.l2_by_kind.at("norm"), tau[1].norm().item<double>(), 1e-6);
  EXPECT_NEAR(st.l2_from_base, std::hypot(tau[0].norm().item<double>(), tau[1].norm().item<double>()), 1e-6);
  std::map<std::string, at::Tensor> t0{{"x", tau[0]}}, t1{{"x", -tau[0]}}, t2{{"x", tau[1]}};
  const auto cos = task_vector_cosines({&t0, &t1, &t2}, local);
  EXPECT_NEAR(cos[0][0], 1.0, 1e-12);
  EXPECT_NEAR(cos[0][1], -1.0, 1e-12);
  EXPECT_LT(std::abs(cos[0][2]), 0.3);
}

}  // namespace
}  // namespace ms::merge
