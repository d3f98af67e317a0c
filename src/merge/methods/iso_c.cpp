// Iso-C: the sum of the task vectors with a flattened (isotropic) spectrum
// (https://arxiv.org/abs/2502.04959).
#include "svd_methods.hpp"

namespace ms::merge::methods {
namespace {

class IsoC final : public SvdMethod {
 public:
  IsoC()
      : SvdMethod(svd_info("iso_c", "sum of task vectors with a flattened (isotropic) spectrum",
                           "https://arxiv.org/abs/2502.04959")) {}

 protected:
  at::Tensor delta(const std::vector<at::Tensor>& tau, const Params&) const override { return kernels::iso_c_delta(tau); }
};

}  // namespace

std::unique_ptr<Method> iso_c() { return std::make_unique<IsoC>(); }

}  // namespace ms::merge::methods
