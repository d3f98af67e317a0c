// Karcher mean (mergekit 0.1.5): the Riemannian centre of mass of the models' directions on the
// unit hypersphere, found by fixed-point iteration, scaled by the models' mean norm.
#include "parts.hpp"

namespace ms::merge::methods {
namespace {

// mergekit's karcher_merge_tensors with equal weights, in float32 with the same operations in the
// same order. Norms stay 0-dim tensors where they enter the result; .item() only picks branches.
at::Tensor karcher_mean(const std::vector<at::Tensor>& x, std::int64_t max_iter, double tol) {
  if (x.size() == 1) return x[0];
  const double alpha = 1.0 / static_cast<double>(x.size());
  std::vector<at::Tensor> norms, units;
  for (const at::Tensor& t : x) {
    norms.push_back(at::linalg_vector_norm(t));
    if (norms.back().item<double>() > tol) units.push_back(t / norms.back());  // the points that count
  }
  if (units.empty()) return at::zeros_like(x[0]);
  double alpha_sum = 0;  // summed as mergekit sums it, so the normalized weight is its double
  for (std::size_t i = 0; i < units.size(); ++i) alpha_sum += alpha;
  const double a = alpha / alpha_sum;
  at::Tensor mean = at::zeros_like(units[0]);
  for (const at::Tensor& u : units) mean += u * a;
  const at::Tensor mean_norm = at::linalg_vector_norm(mean);
  mean = mean_norm.item<double>() < tol ? units[0].clone() : mean / mean_norm;

  for (std::int64_t it = 0; it < max_iter; ++it) {
    at::Tensor tangent = at::zeros_like(mean);
    for (const at::Tensor& u : units) {
      const at::Tensor dot = at::dot(mean.flatten(), u.flatten()).clamp(-1.0, 1.0);
      const at::Tensor theta = at::arccos(dot);
      if (theta.item<double>() < tol) continue;
      tangent += (theta / at::sin(theta)) * a * (u - dot * mean);
    }
    const at::Tensor tangent_norm = at::linalg_vector_norm(tangent);
    if (tangent_norm.item<double>() < tol) break;
    mean = at::cos(tangent_norm) * mean + at::sin(tangent_norm) * (tangent / tangent_norm);
    const at::Tensor unit_norm = at::linalg_vector_norm(mean);
    if (unit_norm.item<double>() > tol) mean = mean / unit_norm;
  }
  at::Tensor scale = norms[0] * alpha;  // every point's norm, as mergekit sums them (0 + a·‖x₀‖ + ...)
  for (std::size_t i = 1; i < norms.size(); ++i) scale = scale + norms[i] * alpha;
  return scale * mean;
}

class Karcher final : public Method {
 public:
  Karcher() : Method(info()) {}
  static MethodInfo info() {
    MethodInfo i;
    i.name = "karcher";
    i.summary = "Karcher (Riemannian) mean of the models on the hypersphere, scaled by their mean norm";
    i.reference_url = "https://arxiv.org/abs/2603.04972";
    i.needs_base = false;
    i.scope = Scope::WholeTensor;
    i.plan_cost = 20;  // up to max_iter passes over every model
    i.params = {parts::integer("max_iter", "10", 0, 1e9, "most fixed-point iterations"),
                parts::num("tol", "1e-5", 0, 1, "convergence tolerance: tangent norm, angle and norm cut-off")};
    return i;
  }
  // mergekit feeds the base to Karcher as one more point, after the models; without a base the
  // models alone (θ₀ is the first model then, its τ zero).
  at::Tensor merge(const TensorInputs& in) const override {
    std::vector<at::Tensor> points;
    for (const at::Tensor& t : in.tau) points.push_back(in.base + t);
    if (!in.request.base_is_first_member) points.push_back(in.base);
    const Params& p = in.request.params;
    return karcher_mean(points, static_cast<std::int64_t>(p.number("max_iter")), p.number("tol"));
  }
  MergekitForm mergekit_form(const MergeRequest& r) const override {
    MergekitForm f;
    f.method = name;
    f.params["max_iter"] = format_number(r.params.number("max_iter"));
    f.params["tol"] = format_number(r.params.number("tol"));
    f.base_is_first_model = !r.base_is_first_member;  // the base is one of the points
    return f;
  }
};

}  // namespace

std::unique_ptr<Method> karcher() { return std::make_unique<Karcher>(); }

}  // namespace ms::merge::methods
