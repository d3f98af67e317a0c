// Fused CPU kernels of the methods that take one or two models against θ₀: the spherical family
// (SLERP, NuSLERP) in two streamed passes, and the elementwise ones (NearSwap, a passthrough's
// scale) in one. Each input is read at its own stored dtype block by block (kernels_stream.hpp),
// so no float32 copy of a tensor is formed.
#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <tuple>
#include <vector>

#include "kernels.hpp"
#include "kernels_stream.hpp"

namespace ms::merge::kernels {
using namespace stream;
namespace {

// v0 and v1 of elements [off, off + len), as PairVectors states them. `pb` is θ₀'s block; v0 may
// point at it. `x0` and `x1` are block-sized buffers the vectors are formed in.
struct PairBlock {
  const float* v0;
  const float* v1;
};
PairBlock form_pair(const PairVectors& form, const std::vector<StoredSpan>& models, const float* __restrict pb,
                    std::int64_t off, std::int64_t len, float* __restrict x0, float* __restrict x1) {
  const auto task_vector_of = [&](const StoredSpan& m, float* __restrict x) {
    widen_stored(m, off, x, len);
    if (!form.tau_given)
      for (std::int64_t j = 0; j < len; ++j) x[j] = x[j] - pb[j];
  };
  if (form.task_vectors) {
    task_vector_of(models[0], x0);
    task_vector_of(models[1], x1);
    return {x0, x1};
  }
  task_vector_of(models.back(), x1);
  for (std::int64_t j = 0; j < len; ++j) x1[j] = pb[j] + x1[j];  // θ₀ + τ, as the generic path adds them
  return {pb, x1};
}

// The three sums of one run of elements, in float64 (a float product is exact in a double), in
// four interleaved lanes added in a fixed order.
std::array<double, 3> pair_sums(const float* v0, const float* v1, std::int64_t len) {
  double s00[4] = {0, 0, 0, 0}, s11[4] = {0, 0, 0, 0}, s01[4] = {0, 0, 0, 0};
  std::int64_t j = 0;
  for (; j + 4 <= len; j += 4) {
    for (int l = 0; l < 4; ++l) {
      const double a = v0[j + l], b = v1[j + l];
      s00[l] += a * a;
      s11[l] += b * b;
      s01[l] += a * b;
    }
  }
  for (; j < len; ++j) {
    const double a = v0[j], b = v1[j];
    s00[0] += a * a;
    s11[0] += b * b;
    s01[0] += a * b;
  }
  return {(s00[0] + s00[1]) + (s00[2] + s00[3]), (s11[0] + s11[1]) + (s11[2] + s11[3]),
          (s01[0] + s01[1]) + (s01[2] + s01[3])};
}

// Pass 1: |v0|², |v1|², v0·v1 of each group.
std::vector<double> group_sums(const StoredSpan& base, const std::vector<StoredSpan>& models, std::int64_t n,
                               std::int64_t group_len, const PairVectors& form) {
  return sums_by_group(n, group_len, 3, [&](std::int64_t off, std::int64_t len, auto&& emit) {
    thread_local std::vector<float> b0, x0, x1;
    b0.resize(kStreamBlock), x0.resize(kStreamBlock), x1.resize(kStreamBlock);
    widen_stored(base, off, b0.data(), len);
    const PairBlock v = form_pair(form, models, b0.data(), off, len, x0.data(), x1.data());
    for_each_run(off, len, group_len, [&](std::int64_t g, std::int64_t j0, std::int64_t j1) {
      const std::array<double, 3> s = pair_sums(v.v0 + j0, v.v1 + j0, j1 - j0);
      emit(g, s.data());
    });
  });
}

}  // namespace

StreamStats pairwise_stream(void* out, c10::ScalarType out_type, const StoredSpan& base,
                            const std::vector<StoredSpan>& models, std::int64_t n, std::int64_t group_len,
                            const PairVectors& form, const PairCoefficients& coefficients, bool with_stats) {
  TORCH_CHECK(form.task_vectors ? models.size() == 2 : !models.empty(), "pairwise_stream: ", models.size(),
              " models for this form");
  if (n == 0) return {};
  TORCH_CHECK(group_len > 0 && n % group_len == 0, "pairwise_stream: groups of ", group_len, " over ", n, " values");
  const std::vector<double> sums = group_sums(base, models, n, group_len, form);
  std::vector<float> c0(sums.size() / 3), c1(sums.size() / 3);
  for (std::size_t g = 0; g < c0.size(); ++g) std::tie(c0[g], c1[g]) = coefficients(sums[3 * g], sums[3 * g + 1], sums[3 * g + 2]);
  return dispatch_out(out, out_type, "pairwise_stream", [&](auto* o) {
    return stream_blocks(o, base, n, with_stats,
                         [&](const float* __restrict pb, std::int64_t off, std::int64_t len, float* x0, float* x1,
                             float* __restrict vs) {
                           const PairBlock v = form_pair(form, models, pb, off, len, x0, x1);
                           for_each_run(off, len, group_len, [&](std::int64_t g, std::int64_t j0, std::int64_t j1) {
                             const float a = c0[static_cast<std::size_t>(g)], b = c1[static_cast<std::size_t>(g)];
                             if (form.task_vectors) {
                               for (std::int64_t k = j0; k < j1; ++k) vs[k] = pb[k] + (a * v.v0[k] + b * v.v1[k]);
                             } else {
                               for (std::int64_t k = j0; k < j1; ++k) vs[k] = a * v.v0[k] + b * v.v1[k];
                             }
                           });
                         });
  });
}

StreamStats elementwise_stream(void* out, c10::ScalarType out_type, const StoredSpan& base, const StoredSpan& model,
                               std::int64_t n, ElementwiseOp op, double param, bool tau_given, bool with_stats) {
  // ATen computes a float32 tensor's op with a scalar in float32: the scalar is rounded first.
  const auto p = static_cast<float>(param);
  return dispatch_out(out, out_type, "elementwise_stream", [&](auto* o) {
    return stream_blocks(o, base, n, with_stats,
                         [&](const float* __restrict pb, std::int64_t off, std::int64_t len, float* __restrict t, float*,
                             float* __restrict vs) {
                           if (model.data == nullptr) {  // the model is θ₀ itself (no base given)
                             TORCH_CHECK(op == ElementwiseOp::Scale, "elementwise_stream: NearSwap needs a model");
                             for (std::int64_t j = 0; j < len; ++j) vs[j] = pb[j] * p;
                             return;
                           }
                           widen_stored(model, off, t, len);
                           if (!tau_given)
                             for (std::int64_t j = 0; j < len; ++j) t[j] = t[j] - pb[j];
                           if (op == ElementwiseOp::Scale) {
                             for (std::int64_t j = 0; j < len; ++j) vs[j] = (pb[j] + t[j]) * p;
                             return;
                           }
                           for (std::int64_t j = 0; j < len; ++j) {  // NearSwap, the generic path's order
                             const float b = pb[j] + t[j];
                             float w = (1.0f / std::max(std::fabs(t[j]), 1e-6f)) * p;
                             w = std::min(std::max(w, 0.0f), 1.0f);
                             vs[j] = w * b + (1.0f - w) * pb[j];
                           }
                         });
  });
}

}  // namespace ms::merge::kernels
