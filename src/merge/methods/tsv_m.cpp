// TSV-M: task singular vectors, each task's top-r/T SVD block, orthogonalized
// (https://arxiv.org/abs/2412.00081).
#include "svd_methods.hpp"

namespace ms::merge::methods {
namespace {

class TsvM final : public SvdMethod {
 public:
  TsvM()
      : SvdMethod(svd_info("tsv_m", "task singular vectors: per-task top-r/T SVD blocks, orthogonalized",
                           "https://arxiv.org/abs/2412.00081")) {}

 protected:
  at::Tensor delta(const std::vector<at::Tensor>& tau, const Params&) const override { return kernels::tsv_m_delta(tau); }
};

}  // namespace

std::unique_ptr<Method> tsv_m() { return std::make_unique<TsvM>(); }

}  // namespace ms::merge::methods
