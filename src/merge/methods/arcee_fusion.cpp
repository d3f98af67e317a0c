// Arcee Fusion (mergekit 0.1.5): take the model's value only where the change matters: importance
// = |θ₁ − θ₀| · KL(softmax θ₁ ‖ softmax θ₀) per row, and entries at or above median + 1.5 · IQR of
// the importance take the model's value; the others keep the base's.
#include "parts.hpp"

namespace ms::merge::methods {
namespace {

// The q-quantile as mergekit takes it: the sorted value at index ⌊q·(n − 1)⌋, the product in
// float32. Selected (kernels::kth_smallest, linear time) rather than sorted: the same value.
at::Tensor quantile_at(const at::Tensor& flat, float q) {
  const std::int64_t n = flat.numel();
  const float pos = q * static_cast<float>(n - 1);
  return at::scalar_tensor(kernels::kth_smallest(flat, static_cast<std::int64_t>(pos) + 1), flat.options());
}

class ArceeFusion final : public Method {
 public:
  ArceeFusion() : Method(info()) {}
  static MethodInfo info() {
    MethodInfo i;
    i.name = "arcee_fusion";
    i.summary = "take the model's entries whose importance (|delta| x row KL divergence) is an outlier";
    i.reference_url = "https://arcee.ai";
    i.max_models = 1;
    i.scope = Scope::WholeTensor;
    i.plan_cost = 8;  // softmaxes and three selections over the importance
    return i;
  }
  // The same float32 operations in the same order as mergekit's. mergekit estimates the quartiles
  // of tensors over 10⁶ entries from a random sample of 10⁶; mergesweep takes them over the whole tensor.
  // The selection is made on the CPU whatever the device: the row KL is small enough that another
  // device's softmax rounding would select other entries.
  at::Tensor merge(const TensorInputs& in) const override {
    if (in.tau[0].numel() == 0) return in.base.clone();
    const at::Tensor base = in.base.to(at::kCPU), tau = in.tau[0].to(at::kCPU);
    const at::Tensor model = base + tau;
    const at::Tensor p = at::softmax(model, -1) + 1e-8;
    const at::Tensor q = at::softmax(base, -1) + 1e-8;
    const at::Tensor kl = (p * at::log(p / q)).sum(-1, true);
    const at::Tensor importance = tau.abs() * kl;  // |θ₁ − θ₀| is |τ| exactly
    const at::Tensor flat = importance.reshape(-1);
    const at::Tensor q1 = quantile_at(flat, 0.25f), median = quantile_at(flat, 0.5f), q3 = quantile_at(flat, 0.75f);
    const at::Tensor threshold = median + (q3 - q1) * 1.5;
    const at::Tensor take = (importance >= threshold).to(at::kFloat).to(in.base.device());
    return in.base + in.tau[0] * take;
  }
  MergekitForm mergekit_form(const MergeRequest&) const override {
    MergekitForm f;
    f.method = name;
    return f;
  }
};

}  // namespace

std::unique_ptr<Method> arcee_fusion() { return std::make_unique<ArceeFusion>(); }

}  // namespace ms::merge::methods
