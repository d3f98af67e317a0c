// Internal: the per-tensor math of each method family. Inputs float32; each returns θ (float32).
// Formulas and the references they follow: docs/methods.md.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "mergesweep/merge/merge.hpp"

namespace ms::merge::kernels {

// x / v, with v as a 0-dim tensor on x's device (and of x's dtype). CUDA computes a division by
// a host scalar as a multiplication by its reciprocal, which is not the same IEEE operation; a
// device tensor is divided by. The CPU divides in both forms, so its results are bitwise those
// of x / v.
inline at::Tensor div_by(const at::Tensor& x, double v) { return x / at::scalar_tensor(v, x.options()); }
// The mean over `dim` (or every element) as the CPU computes it, sum then divide, on any device
// (CUDA's mean multiplies the sum by 1/n).
inline at::Tensor mean_by_division(const at::Tensor& x, std::int64_t dim) {
  return div_by(x.sum(dim), static_cast<double>(x.size(dim)));
}
inline at::Tensor mean_by_division(const at::Tensor& x) { return div_by(x.sum(), static_cast<double>(x.numel())); }

at::Tensor linear(const at::Tensor& base, const std::vector<at::Tensor>& tau, const std::vector<double>& w,
                  bool normalize);
// Per tensor, or per output row (each row of a [rows, ...] view its own interpolation).
at::Tensor slerp(const at::Tensor& a, const at::Tensor& b, double t, bool per_row);

// A merged task vector before normalization: the result is raw / divisor. Kept apart because
// Subspace Boosting can come before or after the normalization (sb_order).
struct Parts {
  at::Tensor raw;
  at::Tensor divisor;  // a scalar or a tensor of raw's shape
  at::Tensor normalized() const { return raw / divisor; }
};

// Σ wᵢ τᵢ, divided by Σ wᵢ when normalize: the merged task vector of task arithmetic.
Parts weighted_sum(const std::vector<at::Tensor>& tau, const std::vector<double>& w, bool normalize);
// Keeps exactly ⌊density·numel⌋ entries of largest magnitude (mergekit's "magnitude" sparsifier).
at::Tensor trim_top_k(const at::Tensor& tau, double density);
// TIES sign election on weighted deltas and the disjoint merge (weighted mean when normalize).
Parts ties_consensus(const std::vector<at::Tensor>& tau, const std::vector<double>& w, bool normalize);
// Device-generic twins of the two raw-pointer kernels above, in ATen ops on the inputs' device
// (what runs for tensors not on the CPU): the same selection and the same float32 operations in
// the same order, so bitwise equal to them (tests/merge/test_device_twins.cpp).
at::Tensor trim_top_k_aten(const at::Tensor& tau, double density);
Parts ties_consensus_aten(const std::vector<at::Tensor>& tau, const std::vector<double>& w, bool normalize);
// Original TIES (global trim): unweighted election, zeros take the model's majority sign, mean by count.
at::Tensor ties_original(const std::vector<at::Tensor>& trimmed, double majority_sign);

// The k-th smallest value (1-based) of a tensor, at::kthvalue's value: on the CPU for float32 by
// radix selection on the bits (kernels_select.cpp); NaN present or another device: at::kthvalue.
float kth_smallest(const at::Tensor& x, std::int64_t k);

// The members' population variance per element, at::var(at::stack(flat), 0, unbiased=false) for
// float32 1-D tensors: on the CPU written out as ATen's kernel computes it (Welford in float64,
// member by member; m2 / n rounded to float32), bitwise (tests/merge/test_device_twins.cpp), with
// no [n, N] stack and no per-element sub-iterator (ATen's reduction over the stacked axis runs one
// per output element: most of SCE's time). Other devices: the ATen expression itself.
at::Tensor member_variance(const std::vector<at::Tensor>& flat);

at::Tensor model_stock(const at::Tensor& base, const std::vector<at::Tensor>& tau, bool filter_wise, bool angle_mean);
// Model Stock in two passes over a tensor's row blocks (model_stock above is both on one tensor):
// the members' Gram matrix (per output row when filter_wise), products in float32 summed over
// blocks in float64; then the ratio t and the elementwise interpolation, block by block.
class StockGram {
 public:
  StockGram(const at::Tensor& like, std::size_t members, bool filter_wise);
  // The members' τ over rows [row0, row0 + rows) of the tensor (the whole τ of a 0-d tensor).
  void add(std::int64_t row0, const std::vector<at::Tensor>& tau);
  // t: one per output row when filter_wise (a 2-D or larger tensor), else one value; float32.
  at::Tensor ratio(bool angle_mean) const;

 private:
  bool rows_;
  std::int64_t n_;
  at::Tensor gram_;  // [rows or 1, n, n], float64
};
// The ratio t of each row of a Gram matrix [rows, n, n] (float64): StockGram::ratio's rule.
at::Tensor stock_ratio(const at::Tensor& gram, bool angle_mean);
// θ₀ + t·mean(τ) as (1 − t)·θ₀ + t·mean(θ): `t` is the ratio's rows for this block.
at::Tensor model_stock_apply(const at::Tensor& base, const std::vector<at::Tensor>& tau, const at::Tensor& t,
                             bool filter_wise);

at::Tensor tsv_m_delta(const std::vector<at::Tensor>& tau);                // 2-D
at::Tensor iso_c_delta(const std::vector<at::Tensor>& tau);                // 2-D
at::Tensor iso_c_delta_svd(const at::Tensor& sum);  // the plain SVD form (fallback, and tests)
at::Tensor iso_cts_delta(const std::vector<at::Tensor>& tau, double common_fraction);  // 2-D
at::Tensor subspace_boost(const at::Tensor& delta, double beta);           // 2-D
at::Tensor subspace_boost_svd(const at::Tensor& delta, double beta);       // the plain SVD form

// In-place fast paths for the resident sweep: write straight into `out` (no temporaries), with the
// same float32 operations in the same order as the tensor-op kernels above, so results are
// bitwise the same (tests/merge/test_resident.cpp).
//   out = base + λ · (Σ wᵢ τᵢ ÷ divisor), divisor = Σ wᵢ when normalize else 1
void task_arithmetic_into(const at::Tensor& out, const at::Tensor& base, const std::vector<const at::Tensor*>& tau,
                          const std::vector<double>& w, bool normalize, double lambda);
// Its device-generic twin (what runs for tensors not on the CPU): the same float32 operations in
// the same order, in ATen ops. Bitwise equal (tests/merge/test_device_twins.cpp).
void task_arithmetic_into_aten(const at::Tensor& out, const at::Tensor& base, const std::vector<const at::Tensor*>& tau,
                               const std::vector<double>& w, bool normalize, double lambda);

// A float32 copy of a tensor, never the tensor itself: for a float32 checkpoint .to() would
// return the mapped view, and an in-place op on the result would rewrite the mapping under every
// later reader. bfloat16 widens by a 16-bit shift, exact and several times faster than this
// libtorch's generic conversion.
at::Tensor to_float32(const at::Tensor& t);
// τ = float32(theta) − float32(base), a fresh float32 tensor on their device. On the CPU with
// bfloat16 inputs one pass (widen both, subtract); otherwise ATen's widening and subtraction,
// the same float32 values.
at::Tensor task_vector(const at::Tensor& theta, const at::Tensor& base);
// task_vector written into `out` (float32, theta's shape and device): no allocation on the CPU
// bfloat16 path, so a caller can form τ in a workspace it already holds.
void task_vector_into(const at::Tensor& out, const at::Tensor& theta, const at::Tensor& base);

// A tensor's bytes as stored, with the dtype they are stored in. Every raw-pointer kernel takes
// its inputs as spans, so no input can be read at another input's dtype: each is widened to
// float32 from its own type (bf16, f16, f32; f64 rounded as .to(kFloat) rounds it).
struct StoredSpan {
  const void* data = nullptr;
  c10::ScalarType type = c10::ScalarType::Float;
};
// The span of a contiguous CPU tensor of `numel` values; throws otherwise (a shape mismatch
// that got past io::check_family must not become a read past the end of a buffer).
StoredSpan stored_span(const at::Tensor& t, std::int64_t numel);

// Streaming task arithmetic straight from the checkpoints' bytes, one pass per block: upcast,
// τᵢ = θᵢ − θ₀, the same float ops as task_arithmetic_into, the output rounded to its dtype, the
// sum of squared changes (for ‖θ − θ₀‖₂) and a non-finite count, all in one pass. Without
// `with_stats` the two statistics are skipped (returned as zero): a caller that measures the
// distance itself would pay for a serial float64 sum that costs as much as the merge.
struct StreamStats {
  double sq_change = 0;
  std::int64_t non_finite = 0;
};
// DARE's drop inside the fused kernels (parts::dare's float operations): member i's τ times its
// keep (1 or 0, merge::dare_keeps of key[i] at the element's index in the whole tensor), divided by
// density[i] when inverse_density.
struct DareDrop {
  std::vector<std::uint64_t> key;
  std::vector<double> density;
  bool inverse_density = true;
};
StreamStats task_arithmetic_stream(void* out, c10::ScalarType out_type, const StoredSpan& base,
                                   const std::vector<StoredSpan>& models, std::int64_t n, const std::vector<double>& w,
                                   bool normalize, double lambda, bool with_stats = true, const DareDrop* drop = nullptr);

// Streaming linear merge, kernels::linear's float operations per element: Σ (θ₀ + τᵢ)·wᵢ, ÷ Σ wᵢ
// when normalize. `models` are θᵢ as stored (τᵢ = θᵢ − θ₀ formed in the loop, as the generic path
// forms it), or τᵢ in float32 over a float32 θ₀ when `tau_given` (the resident sweep's layout).
// Statistics as task_arithmetic_stream's.
StreamStats linear_stream(void* out, c10::ScalarType out_type, const StoredSpan& base,
                          const std::vector<StoredSpan>& models, std::int64_t n, const std::vector<double>& w,
                          bool normalize, bool tau_given, bool with_stats);

// The two vectors a pairwise method interpolates, formed block by block as the generic path forms
// them: v0 = θ₀ and v1 = θ₀ + τ of the last model (`task_vectors` false: SLERP, NuSLERP without a
// base), or v0 = τ₀, v1 = τ₁ with θ₀ added to the result (NuSLERP with a base). τ = θ − θ₀ in
// float32, or given in float32 over a float32 θ₀ (`tau_given`, the resident sweep's layout).
struct PairVectors {
  bool task_vectors = false;
  bool tau_given = false;
};
// The coefficients (c0, c1) of one interpolated vector, from its sums in float64: |v0|², |v1|², v0·v1.
using PairCoefficients = std::function<std::pair<float, float>(double v0v0, double v1v1, double v0v1)>;
// Spherical interpolation streamed in two passes: the three sums per vector (the whole tensor, or
// each run of `group_len` consecutive elements: a row), summed in float64 over fixed blocks in
// block order (the same sums whatever the thread count); then c0·v0 + c1·v1 (+ θ₀), rounded to the
// output dtype. The generic path sums in float32 through ATen's reductions, so the two differ by
// rounding (tolerance in tests/merge/test_row_blocks.cpp); every CPU caller takes this one.
StreamStats pairwise_stream(void* out, c10::ScalarType out_type, const StoredSpan& base,
                            const std::vector<StoredSpan>& models, std::int64_t n, std::int64_t group_len,
                            const PairVectors& form, const PairCoefficients& coefficients, bool with_stats);
// One model against θ₀, elementwise in one pass (a = θ₀, τ, b = θ₀ + τ as above), bitwise the
// generic path: NearSwap's weight·b + (1 − weight)·a, weight = clamp(t / max(|τ|, 1e-6), 0, 1);
// Scale's b·s (passthrough).
enum class ElementwiseOp { Nearswap, Scale };
StreamStats elementwise_stream(void* out, c10::ScalarType out_type, const StoredSpan& base, const StoredSpan& model,
                               std::int64_t n, ElementwiseOp op, double param, bool tau_given, bool with_stats);

// Model Stock streamed on the CPU from the inputs as stored (τ formed per block, or given in
// float32 over a float32 θ₀ when `tau_given`): pass 1 the members' Gram matrix per tensor, or per
// row of `group_len` elements, float32 products over each block's run summed in float64 in block
// order (StockGram sums sgemm's float32 blocks of a million, so the two differ by rounding); the
// ratio by stock_ratio; pass 2 model_stock_apply's float operations per element.
StreamStats stock_stream(void* out, c10::ScalarType out_type, const StoredSpan& base,
                         const std::vector<StoredSpan>& models, std::int64_t n, std::int64_t group_len, bool angle_mean,
                         bool tau_given, bool with_stats);

// RAM streamed (methods/ram.cpp): per entry the members whose |τ| > epsilon, the merge in the tensor
// path's float32 operations and order (bitwise); `boost` empty for RAM, RAM+'s per-member factors
// otherwise. ram_counts: each member's entries shared with others and its own (RAM+'s first pass).
struct RamCounts {
  std::int64_t shared = 0;
  std::int64_t unique = 0;
};
std::vector<RamCounts> ram_counts(const StoredSpan& base, const std::vector<StoredSpan>& models, std::int64_t n,
                                  double epsilon, bool tau_given);
StreamStats ram_stream(void* out, c10::ScalarType out_type, const StoredSpan& base, const std::vector<StoredSpan>& models,
                       std::int64_t n, double epsilon, const std::vector<float>& boost, bool tau_given, bool with_stats);

// A member's per-tensor TIES trim, computed once per (checkpoint, density, tensor) and reused:
// keep |x| above the threshold, and threshold ties up to index last_tie.
struct TrimRule {
  std::uint32_t threshold_bits = 0;
  std::int64_t last_tie = -1;
  bool keep_all = true;
};
TrimRule make_trim_rule(const at::Tensor& tau, double density);
// The same rule from ATen ops on any device (make_trim_rule's path off the CPU): the threshold
// by top-k, the last tie kept by index. Holds |τ| and the k largest values with their indices.
TrimRule make_trim_rule_aten(const at::Tensor& tau, double density);
// τ (a block of the tensor whose first element is element `element_offset` of the whole) with
// the rule applied: entries the trim drops set to zero. Any device.
at::Tensor apply_trim_rule(const at::Tensor& tau, const TrimRule& rule, std::int64_t element_offset);
void ties_into(const at::Tensor& out, const at::Tensor& base, const std::vector<const at::Tensor*>& tau,
               const std::vector<const TrimRule*>& rules, const std::vector<double>& w, bool normalize, double lambda);

// ties_into reading θᵢ and θ₀ as stored, each in its own dtype (bfloat16, float16, float32 or
// float64, mixed freely): each block widened and τ formed in the loop, so no member's τ is ever held whole. Bitwise ties_into.
// `out` is float32 (resident) or the output dtype (streaming: rounded as task_arithmetic_stream
// rounds, with its statistics when `with_stats`). With `drop`: DARE-TIES, each τ dropped
// (DareDrop) before the election, whose rules then keep every entry.
StreamStats ties_into_stored(const at::Tensor& out, const at::Tensor& base, const std::vector<const at::Tensor*>& models,
                             const std::vector<const TrimRule*>& rules, const std::vector<double>& w, bool normalize,
                             double lambda, const DareDrop* drop = nullptr, bool with_stats = false);

// Polar factor U Vᵀ of a matrix (thin SVD), float32.
at::Tensor polar(const at::Tensor& m);

}  // namespace ms::merge::kernels

namespace ms::merge {

// The inputs of a method's fused CPU kernel (Method::merge_fused_cpu): one whole tensor.
struct FusedCall {
  const MergeRequest& request;
  const std::string& tensor;                   // its name (DARE's draw depends on it)
  const at::Tensor& out;                       // CPU, contiguous: float32 (resident) or the output dtype (streaming)
  const at::Tensor& base;                      // θ₀ as stored; float32 when tau_given
  const std::vector<const at::Tensor*>& held;  // θᵢ as stored, or τᵢ in float32 when tau_given
  bool tau_given = false;
  // Member i's per-tensor trim rule, cached by the caller; empty where the caller keeps none.
  std::function<const kernels::TrimRule&(std::size_t member)> trim_rule;
  bool with_stats = false;                     // measure the change from θ₀ and count non-finite values
};
struct FusedResult {
  double sq_change = 0;
  std::int64_t non_finite = 0;
};

}  // namespace ms::merge
