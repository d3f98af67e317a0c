// Multi-SLERP (mergekit 0.1.5): a weighted mean of several models (of their task vectors with a
// base) on the hypersphere: the unit vectors are averaged in the tangent space at their weighted
// Euclidean mean, mapped back by the exponential map and scaled by the weighted mean norm.
#include "mergesweep/core/error.hpp"
#include "parts.hpp"

namespace ms::merge::methods {
namespace {

class Multislerp final : public Method {
 public:
  Multislerp() : Method(info()) {}
  static MethodInfo info() {
    MethodInfo i;
    i.name = "multislerp";
    i.summary = "weighted spherical mean of the models (of their task vectors with a base)";
    i.reference_url = "https://goddard.blog/posts/multislerp-wow-what-a-cool-idea";
    i.needs_base = false;
    i.scope = Scope::WholeTensor;
    i.uses_weight = true;
    i.plan_cost = 3;
    i.params = {parts::flag("normalize_weights", "true", "divide the weights by their sum"),
                parts::num("eps", "1e-8", 0, 1, "added to the norms before dividing by them")};
    return i;
  }
  void validate(const MergeRequest& r, const std::string& file) const override {
    double sum = 0;
    for (const auto& m : r.members) sum += m.weight;
    if (r.members.size() > 1 && r.params.flag("normalize_weights") && sum == 0.0)
      fail(file, "weight", "weights sum to zero, so normalize_weights=true would divide by zero");
  }
  // mergekit's multislerp(), the same float32 operations per element. mergekit stacks the n
  // points and forms [n, E] temporaries (unit vectors, products, the tangents: ~6·n·E floats);
  // here each member's terms are formed one at a time (a few E-sized buffers beside the inputs).
  // The sums over members run in member order, as torch's sum over the stacked dimension does;
  // a sum over one point's elements may group its additions otherwise (a few ulps, within the
  // mergekit fixtures' tolerance).
  at::Tensor merge(const TensorInputs& in) const override {
    const MergeRequest& r = in.request;
    const bool has_base = !r.base_is_first_member;
    const std::size_t n = in.tau.size();
    // Without a base, θ₀ is the first model (its τ is zero) and the models themselves are averaged.
    const auto point = [&](std::size_t i) { return has_base ? in.tau[i] : in.base + in.tau[i]; };
    if (n == 1) return has_base ? in.base + in.tau[0] : point(0);
    const float eps = static_cast<float>(r.params.number("eps"));
    // The weights and the mean norm as torch sums these short vectors (its order of additions).
    std::vector<float> wf;
    for (const auto& m : r.members) wf.push_back(static_cast<float>(m.weight));
    at::Tensor wt = at::tensor(wf);
    if (r.params.flag("normalize_weights")) wt = wt / wt.sum();
    const std::vector<float> w(wt.data_ptr<float>(), wt.data_ptr<float>() + n);
    std::vector<float> norms;
    at::Tensor mean = at::zeros_like(in.base);
    for (std::size_t i = 0; i < n; ++i) {
      const at::Tensor p = point(i);
      norms.push_back(at::linalg_vector_norm(p, 2).item<float>());
      mean.add_(kernels::div_by(p, norms[i] + eps) * w[i]);  // a device divisor: see div_by
    }
    const at::Tensor mean_norm = at::linalg_vector_norm(mean);
    if (mean_norm.item<float>() < eps) {
      if (n != 2)
        fail("", "'" + in.name + "'",
             "multislerp: the weighted sum of the unit vectors is zero (antipodal vectors whose weights balance "
             "out); use other weights");
      const at::Tensor res = point(0) * w[0] + point(1) * w[1];  // mergekit's fallback
      return has_base ? res + in.base : res;
    }
    mean.div_(mean_norm);
    at::Tensor tangent_result = at::zeros_like(in.base);
    for (std::size_t i = 0; i < n; ++i) {
      const at::Tensor unit = kernels::div_by(point(i), norms[i] + eps);
      const at::Tensor dot = (unit * mean).sum();
      tangent_result.add_((unit - dot * mean) * w[i]);
    }
    const at::Tensor tangent_norm = at::linalg_vector_norm(tangent_result) + eps;
    at::Tensor result = mean * at::cos(tangent_norm) + tangent_result * (at::sin(tangent_norm) / tangent_norm);
    result.mul_((at::tensor(norms) * wt).sum().to(result.device()));
    return has_base ? result + in.base : result;
  }
  MergekitForm mergekit_form(const MergeRequest& r) const override {
    MergekitForm f;
    f.writes_base_model = !r.base_is_first_member;  // task vectors from the base, as in the merge
    f.method = name;
    f.params["normalize_weights"] = r.params.flag("normalize_weights") ? "true" : "false";
    f.params["eps"] = format_number(r.params.number("eps"));
    return f;
  }
};

}  // namespace

std::unique_ptr<Method> multislerp() { return std::make_unique<Multislerp>(); }

}  // namespace ms::merge::methods
