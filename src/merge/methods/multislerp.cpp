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
  // mergekit's multislerp(), the same float32 operations in the same order.
  at::Tensor merge(const TensorInputs& in) const override {
    const MergeRequest& r = in.request;
    const bool has_base = !r.base_is_first_member;
    const std::size_t n = in.tau.size();
    // Without a base, θ₀ is the first model (its τ is zero) and the models themselves are averaged.
    std::vector<at::Tensor> points;
    for (const at::Tensor& t : in.tau) points.push_back(has_base ? t : in.base + t);
    if (n == 1) return has_base ? in.base + in.tau[0] : points[0];
    const double eps = r.params.number("eps");
    const at::Tensor flat = at::stack(points, 0).view({static_cast<std::int64_t>(n), -1});
    std::vector<float> wf;
    for (const auto& m : r.members) wf.push_back(static_cast<float>(m.weight));
    at::Tensor w = at::tensor(wf, flat.options());
    if (r.params.flag("normalize_weights")) w = w / w.sum();

    const at::Tensor norms = at::linalg_vector_norm(flat, 2, {-1}, true);
    const at::Tensor unit = flat / (norms + eps);
    at::Tensor mean = (unit * w.view({-1, 1})).sum(0);
    const at::Tensor mean_norm = at::linalg_vector_norm(mean);
    if ((mean_norm < eps).item<bool>()) {
      if (n != 2)
        fail("", "'" + in.name + "'",
             "multislerp: the weighted sum of the unit vectors is zero (antipodal vectors whose weights balance "
             "out); use other weights");
      const at::Tensor res = (points[0] * w[0] + points[1] * w[1]).view(in.base.sizes());  // mergekit's fallback
      return has_base ? res + in.base : res;
    }
    mean = mean / mean_norm;
    const at::Tensor dots = (unit * mean).sum(-1, true);
    const at::Tensor tangent = unit - dots * mean;
    const at::Tensor tangent_result = (tangent * w.view({-1, 1})).sum(0);
    const at::Tensor tangent_norm = at::linalg_vector_norm(tangent_result) + eps;
    at::Tensor result = mean * at::cos(tangent_norm) + tangent_result * (at::sin(tangent_norm) / tangent_norm);
    const at::Tensor avg_norm = (norms.squeeze(-1) * w).sum();
    result = (result * avg_norm).view(in.base.sizes());
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
