// The attention paths (model/ops.hpp): the one a GPU takes for masked rows (K/V repeated, no GQA
// flag, so the memory-efficient kernel can run) and the unmasked causal one (flash-eligible) give
// the scores the paths before them gave. Run here on the CPU, where the same ATen entry points
// dispatch to the CPU kernels.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "model/ops.hpp"

namespace ms::model::detail {
namespace {

struct Inputs {
  at::Tensor q, k, v, mask;
};

// B = 2, H = 8 query heads over KV = 2 (G = 4), T new positions against S keys, a per-row mask
// with holes (each query sees itself: the last T keys are the new ones).
Inputs make(std::int64_t T, std::int64_t S, at::ScalarType dtype, std::uint64_t seed) {
  at::manual_seed(seed);
  Inputs in;
  in.q = at::randn({2, 8, T, 16}).to(dtype);
  in.k = at::randn({2, 2, S, 16}).to(dtype);
  in.v = at::randn({2, 2, S, 16}).to(dtype);
  at::Tensor visible = at::rand({2, T, S}).gt(0.4);
  const at::Tensor self = at::arange(T).view({1, T, 1}).add(S - T).eq(at::arange(S).view({1, 1, S}));
  visible = visible.logical_or(self);
  in.mask = additive_mask(visible, dtype);  // [B, 1, T, S]
  return in;
}

double max_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kFloat) - b.to(at::kFloat)).abs().max().item<double>();
}

// Tolerances: the paths sum the same products in different orders (blocked dot products, an
// online softmax against a two-pass one), so float32 agrees to a few ulps of values ~1 (1e-5
// absolute), bfloat16 to its own rounding of the output (2^-7 relative, 2e-2 absolute here).
double tolerance(at::ScalarType dtype) { return dtype == at::kFloat ? 1e-5 : 2e-2; }

// libtorch < 2.5 (this machine's Debian build) has the eager path only.
bool fused_paths() {
  const Inputs in = make(1, 2, at::kFloat, 0);
  return attention_path(in.q, in.k, in.mask, false) != AttentionPath::Eager;
}

TEST(AttentionPaths, MaskedExpandedGivesTheGroupedScores) {
  if (!fused_paths()) GTEST_SKIP() << "libtorch < 2.5: eager only";
  for (const auto dtype : {at::kFloat, at::kBFloat16}) {
    for (const auto& [T, S] : std::vector<std::pair<std::int64_t, std::int64_t>>{{1, 9}, {5, 5}, {7, 19}}) {
      const Inputs in = make(T, S, dtype, 7 + static_cast<std::uint64_t>(T * S));
      const at::Tensor eager = attention_via(AttentionPath::Eager, in.q, in.k, in.v, in.mask);
      const at::Tensor grouped = attention_via(AttentionPath::MaskedGrouped, in.q, in.k, in.v, in.mask);
      const at::Tensor expanded = attention_via(AttentionPath::MaskedExpanded, in.q, in.k, in.v, in.mask);
      ASSERT_EQ(expanded.sizes(), grouped.sizes());
      EXPECT_LE(max_diff(expanded, grouped), tolerance(dtype)) << "T " << T << " S " << S;
      EXPECT_LE(max_diff(expanded, eager), tolerance(dtype)) << "T " << T << " S " << S;
    }
  }
}

TEST(AttentionPaths, UnmaskedCausalGivesTheCausalMasksScores) {
  if (!fused_paths()) GTEST_SKIP() << "libtorch < 2.5: eager only";
  for (const auto dtype : {at::kFloat, at::kBFloat16}) {
    const Inputs in = make(11, 11, dtype, 3);
    const at::Tensor causal = causal_mask(0, 11, 0, dtype, at::kCPU);  // [T, S]
    const at::Tensor eager = attention_via(AttentionPath::Eager, in.q, in.k, in.v, causal);
    const at::Tensor fused = attention_via(AttentionPath::Unmasked, in.q, in.k, in.v, causal, /*plain_causal=*/true);
    const at::Tensor masked = attention_via(AttentionPath::MaskedGrouped, in.q, in.k, in.v, causal);
    EXPECT_LE(max_diff(fused, eager), tolerance(dtype));
    EXPECT_LE(max_diff(fused, masked), tolerance(dtype));
  }
}

// Which path runs: the CPU keeps grouped K/V with a mask (no copies); no mask is ever passed
// where none is needed (plain causal, or a single new position without a window).
TEST(AttentionPaths, ChoiceOnTheCpu) {
  const Inputs in = make(5, 5, at::kFloat, 1);
  const AttentionPath masked = attention_path(in.q, in.k, in.mask, false);
  const AttentionPath causal = attention_path(in.q, in.k, in.mask, true);
  const AttentionPath none = attention_path(in.q, in.k, at::Tensor(), false);
  if (!fused_paths()) {
    EXPECT_EQ(masked, AttentionPath::Eager);
    EXPECT_EQ(causal, AttentionPath::Eager);
    GTEST_SKIP() << "libtorch < 2.5: eager only";
  }
  EXPECT_EQ(masked, AttentionPath::MaskedGrouped) << attention_path_name(masked);
  EXPECT_EQ(causal, AttentionPath::Unmasked) << attention_path_name(causal);
  EXPECT_EQ(none, AttentionPath::Unmasked) << attention_path_name(none);
}

// The name of the SDPA kernel a path takes (the GPU bench prints it) is one PyTorch knows; the
// eager path calls none.
TEST(AttentionPaths, SdpaKernelNames) {
  const Inputs in = make(5, 5, at::kBFloat16, 2);
  EXPECT_EQ(sdpa_kernel_name(AttentionPath::Eager, in.q, in.k, in.v, in.mask), "eager");
  if (!fused_paths()) GTEST_SKIP() << "libtorch < 2.5: eager only";
  for (AttentionPath p : {AttentionPath::Unmasked, AttentionPath::MaskedGrouped, AttentionPath::MaskedExpanded}) {
    const std::string name = sdpa_kernel_name(p, in.q, in.k, in.v, in.mask, p == AttentionPath::Unmasked);
    EXPECT_TRUE(name == "flash" || name == "math" || name == "memory-efficient" || name == "cudnn")
        << attention_path_name(p) << ": " << name;
  }
}

}  // namespace
}  // namespace ms::model::detail
