// The device-generic twins of the raw-pointer kernels (what runs for tensors on a GPU) run here
// on the CPU and must equal the fast paths bitwise: same selection, same float32 operations.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "merge/kernels.hpp"

namespace ms::merge::kernels {
namespace {

// Values with many exact ties in magnitude (so the tie rule at the threshold is exercised) and
// exact zeros.
at::Tensor tied_values(std::int64_t n, std::uint64_t seed) {
  at::manual_seed(seed);
  return at::randint(-6, 7, {n}, at::kFloat) * 0.25f;
}

TEST(DeviceTwins, TrimTopKEqualsTheRadixKernel) {
  for (const double density : {0.05, 0.1, 0.3, 0.5, 0.9, 1.0}) {
    for (const std::int64_t n : {1, 7, 4096, 100003}) {
      const at::Tensor x = tied_values(n, 17 + static_cast<std::uint64_t>(n)).view({-1});
      const at::Tensor fast = trim_top_k(x, density), twin = trim_top_k_aten(x, density);
      EXPECT_TRUE(fast.equal(twin)) << "density " << density << " n " << n;
      const auto k = std::max<std::int64_t>(1, static_cast<std::int64_t>(density * static_cast<double>(n)));
      if (density < 1.0 && k < n) {
        EXPECT_LE(twin.ne(0).sum().item<std::int64_t>(), k);
      }
    }
  }
  // A 2-D tensor keeps its shape.
  const at::Tensor m = tied_values(64 * 33, 5).view({64, 33});
  EXPECT_TRUE(trim_top_k(m, 0.2).equal(trim_top_k_aten(m, 0.2)));
}

// The trim rule a GPU makes (top-k) and applies block by block equals the radix kernel's rule
// and trim_top_k on the whole tensor.
TEST(DeviceTwins, TrimRuleTwinAndBlocksEqualTheRadixKernel) {
  for (const double density : {0.05, 0.1, 0.3, 0.5, 0.9, 1.0}) {
    for (const std::int64_t n : {1, 7, 4096, 100003}) {
      const at::Tensor x = tied_values(n, 29 + static_cast<std::uint64_t>(n)).view({-1});
      const TrimRule fast = make_trim_rule(x, density), twin = make_trim_rule_aten(x, density);
      EXPECT_EQ(fast.keep_all, twin.keep_all) << "density " << density << " n " << n;
      EXPECT_EQ(fast.threshold_bits, twin.threshold_bits) << "density " << density << " n " << n;
      EXPECT_EQ(fast.last_tie, twin.last_tie) << "density " << density << " n " << n;
      std::vector<at::Tensor> blocks;
      const std::int64_t block = 1000;
      for (std::int64_t b = 0; b < n; b += block)
        blocks.push_back(apply_trim_rule(x.narrow(0, b, std::min(block, n - b)), twin, b));
      EXPECT_TRUE(at::cat(blocks).equal(trim_top_k(x, density))) << "density " << density << " n " << n;
    }
  }
}

TEST(DeviceTwins, TiesConsensusEqualsTheFusedKernel) {
  for (const bool normalize : {false, true}) {
    std::vector<at::Tensor> tau;
    for (int i = 0; i < 5; ++i) tau.push_back(trim_top_k(at::randn({257, 31}), 0.3));
    tau.push_back(at::zeros({257, 31}));  // a member with nothing left: never agrees
    const std::vector<double> w = {0.3, 1.0, 0.7, 0.1, 2.5, 1.0};
    const Parts fast = ties_consensus(tau, w, normalize), twin = ties_consensus_aten(tau, w, normalize);
    EXPECT_TRUE(fast.raw.equal(twin.raw)) << "normalize " << normalize;
    EXPECT_TRUE(fast.divisor.equal(twin.divisor)) << "normalize " << normalize;
  }
}

TEST(DeviceTwins, TaskArithmeticEqualsTheFusedKernel) {
  const at::Tensor base = at::randn({3 * 4096 + 5});
  std::vector<at::Tensor> tau;
  std::vector<const at::Tensor*> ptrs;
  for (int i = 0; i < 5; ++i) tau.push_back(0.01 * at::randn({3 * 4096 + 5}));
  for (const auto& t : tau) ptrs.push_back(&t);
  const std::vector<double> w = {0.3, 1.0, 0.7, 0.1, 2.5};
  for (const bool normalize : {false, true}) {
    at::Tensor a = at::empty_like(base), b = at::empty_like(base);
    task_arithmetic_into(a, base, ptrs, w, normalize, 0.9);
    task_arithmetic_into_aten(b, base, ptrs, w, normalize, 0.9);
    EXPECT_TRUE(a.equal(b)) << "normalize " << normalize;
  }
}

TEST(DeviceTwins, StoredTiesAndTaskVectorsEqualTheFloat32Kernels) {
  const std::int64_t n = 3 * 4096 + 17;
  const at::Tensor b16 = at::randn({n}).to(at::kBFloat16);
  std::vector<at::Tensor> models, taus;
  std::vector<const at::Tensor*> model_ptrs, tau_ptrs;
  std::vector<TrimRule> rules;
  for (int i = 0; i < 4; ++i) models.push_back((b16.to(at::kFloat) + 0.01 * at::randn({n})).to(at::kBFloat16));
  for (const auto& m : models) {
    taus.push_back(task_vector(m, b16));
    EXPECT_TRUE(taus.back().equal(m.to(at::kFloat) - b16.to(at::kFloat)));
    rules.push_back(make_trim_rule(taus.back(), 0.4));
  }
  std::vector<const TrimRule*> rule_ptrs;
  for (int i = 0; i < 4; ++i) model_ptrs.push_back(&models[i]), tau_ptrs.push_back(&taus[i]), rule_ptrs.push_back(&rules[i]);
  const std::vector<double> w = {0.5, 1.0, 0.25, 0.75};
  for (const bool normalize : {false, true}) {
    at::Tensor a = at::empty({n}), b = at::empty({n});
    ties_into(a, b16.to(at::kFloat), tau_ptrs, rule_ptrs, w, normalize, 0.8);
    ties_into_stored(b, b16, model_ptrs, rule_ptrs, w, normalize, 0.8);
    EXPECT_TRUE(a.equal(b)) << "normalize " << normalize;
  }
}

// Divisions by a 0-dim tensor on the data's device (div_by, mean_by_division: what CUDA must do to
// divide as the CPU does, not multiply by a reciprocal) give, on the CPU, bitwise what the old
// division by a host scalar and ATen's mean gave: the merges' CPU results do not move.
TEST(DeviceTwins, DivisionByADeviceScalarIsTheCpuDivision) {
  at::manual_seed(41);
  for (const std::int64_t n : {1, 7, 4097, 100003}) {
    const at::Tensor x = at::randn({n}, at::kFloat) * 3.0f;
    for (const double d : {3.0, 0.3, 7.0 / 3.0, 12.0, 1e-3, 0.1 + 0.2}) {
      EXPECT_TRUE(div_by(x, d).equal(x / d)) << "n " << n << " d " << d;
      at::Tensor in_place = x.clone(), device_scalar = x.clone();
      in_place.div_(d);
      device_scalar.div_(at::scalar_tensor(d, x.options()));
      EXPECT_TRUE(device_scalar.equal(in_place)) << "n " << n << " d " << d;
    }
    const at::Tensor x64 = x.to(at::kDouble);
    EXPECT_TRUE(div_by(x64, 7.0 / 3.0).equal(x64 / (7.0 / 3.0)));
  }
  for (const std::int64_t members : {2, 3, 5, 7, 12}) {
    const at::Tensor stacked = at::randn({members, 33, 65}, at::kFloat);
    EXPECT_TRUE(mean_by_division(stacked, 0).equal(stacked.mean(0))) << members << " members";
    const at::Tensor s = at::rand({members * 17}, at::kFloat);
    EXPECT_TRUE(mean_by_division(s).equal(s.mean())) << members;
  }
  // The two forms differ somewhere (else the change would prove nothing on a GPU).
  const at::Tensor y = at::randn({100003}, at::kFloat);
  EXPECT_FALSE(div_by(y, 3.0).equal(y * static_cast<float>(1.0 / 3.0)));
}

}  // namespace
}  // namespace ms::merge::kernels

// SCE's variance across members, written out, is ATen's own var over the stacked members bit for bit
// (the top-k selection on it must not move), on values with many ties and a wide range.
TEST(DeviceTwins, MemberVarianceIsAtenVarOverTheStack) {
  at::manual_seed(11);
  for (int members : {2, 3, 12}) {
    std::vector<at::Tensor> flat;
    for (int i = 0; i < members; ++i) {
      at::Tensor t = at::randn({100003}) * std::pow(10.0, i % 5 - 2);
      t.narrow(0, 0, 5000).copy_(at::randint(-3, 4, {5000}).to(at::kFloat));  // ties and exact zeros
      flat.push_back(t.to(at::kBFloat16).to(at::kFloat));
    }
    const at::Tensor expected = at::var(at::stack(flat, 0), {0}, /*unbiased=*/false, /*keepdim=*/false);
    EXPECT_TRUE(ms::merge::kernels::member_variance(flat).equal(expected)) << members << " members";
  }
}

// The radix selection returns at::kthvalue's value for every k tried, on values with ties, both
// signs, zeros of both signs and a wide range (the breadcrumbs band and Arcee's quartiles use it).
TEST(DeviceTwins, KthSmallestIsKthvalue) {
  at::manual_seed(5);
  at::Tensor x = at::randn({200001}) * at::exp(at::randn({200001}) * 4);
  x.narrow(0, 0, 30000).copy_(at::randint(-2, 3, {30000}).to(at::kFloat));
  x.narrow(0, 30000, 100).fill_(-0.0);
  x = x.to(at::kBFloat16).to(at::kFloat);  // many exact ties
  for (std::int64_t k : {std::int64_t{1}, std::int64_t{2}, std::int64_t{15000}, std::int64_t{30050}, std::int64_t{100000},
                         std::int64_t{199999}, std::int64_t{200001}}) {
    const float expected = std::get<0>(at::kthvalue(x, k)).item<float>();
    EXPECT_EQ(ms::merge::kernels::kth_smallest(x, k), expected) << "k " << k;
  }
  const at::Tensor with_nan = at::cat({x, at::full({3}, std::nanf(""))});
  EXPECT_TRUE(std::isnan(ms::merge::kernels::kth_smallest(with_nan, with_nan.numel())));
  EXPECT_EQ(ms::merge::kernels::kth_smallest(with_nan, 7), std::get<0>(at::kthvalue(with_nan, 7)).item<float>());
}
