// Iso-CTS: Iso-C with a common subspace and task-specific ones (https://arxiv.org/abs/2502.04959).
#include "svd_methods.hpp"

namespace ms::merge::methods {
namespace {

class IsoCts final : public SvdMethod {
 public:
  IsoCts() : SvdMethod(info()) {}
  static MethodInfo info() {
    MethodInfo i = svd_info("iso_cts", "Iso-C with common and task-specific subspaces", "https://arxiv.org/abs/2502.04959");
    i.params.push_back(parts::num("common_fraction", "0.8", 0, 1, "share of the rank given to the common subspace"));
    return i;
  }

 protected:
  at::Tensor delta(const std::vector<at::Tensor>& tau, const Params& p) const override {
    return kernels::iso_cts_delta(tau, p.number("common_fraction"));
  }
};

}  // namespace

std::unique_ptr<Method> iso_cts() { return std::make_unique<IsoCts>(); }

}  // namespace ms::merge::methods
