#include "mergesweep/merge/resident.hpp"

#include <ATen/ATen.h>

#include "mergesweep/core/error.hpp"
#include "mergesweep/io/hf_model.hpp"

namespace ms::merge {

struct ResidentModels::Impl {
  std::vector<std::string> names;
  std::map<std::string, at::Tensor> base;
  std::vector<std::map<std::string, at::Tensor>> tau;  // [checkpoint][name]
};

namespace {

// A request's members seen as a TaskVectorSource (for whole-model statistics).
class SubsetSource final : public TaskVectorSource {
 public:
  SubsetSource(const ResidentModels& m, const MergeRequest& r) : m_(m), r_(r) {}
  const std::vector<std::string>& tensor_names() const override { return m_.tensor_names(); }
  at::Tensor base(const std::string& name) override { return m_.base(name); }
  at::Tensor tau(std::size_t member, const std::string& name) override {
    return m_.tau(static_cast<std::size_t>(r_.members[member].index), name);
  }

 private:
  const ResidentModels& m_;
  const MergeRequest& r_;
};

}  // namespace

ResidentModels::ResidentModels(const std::string& base_path, const std::vector<std::string>& checkpoint_paths,
                               std::vector<std::string> names)
    : impl_(std::make_unique<Impl>()) {
  const io::HfModel base = io::HfModel::open(base_path);
  impl_->names = names.empty() ? base.tensor_names() : std::move(names);
  for (const auto& name : impl_->names) impl_->base[name] = base.tensor(name).to(at::kFloat).contiguous();
  for (const auto& path : checkpoint_paths) {
    const io::HfModel ck = io::HfModel::open(path);
    auto& taus = impl_->tau.emplace_back();
    for (const auto& name : impl_->names) {
      const io::TensorEntry& b = base.require(name);
      const io::TensorEntry* e = ck.find(name);
      if (e == nullptr) fail(path, "'" + name + "'", "tensor of the base model is missing from this checkpoint");
      if (e->shape != b.shape) fail(path, "'" + name + "'", "shape differs from the base's");
      taus[name] = ck.tensor(name).to(at::kFloat) - impl_->base[name];
    }
  }
}

ResidentModels::~ResidentModels() = default;
ResidentModels::ResidentModels(ResidentModels&&) noexcept = default;

const std::vector<std::string>& ResidentModels::tensor_names() const { return impl_->names; }
std::size_t ResidentModels::num_checkpoints() const { return impl_->tau.size(); }
const at::Tensor& ResidentModels::base(const std::string& name) const { return impl_->base.at(name); }

const at::Tensor& ResidentModels::tau(std::size_t checkpoint, const std::string& name) const {
  if (checkpoint >= impl_->tau.size()) {
    fail("", "models", "checkpoint index " + std::to_string(checkpoint) + " is out of range (" +
                           std::to_string(impl_->tau.size()) + " loaded)");
  }
  return impl_->tau[checkpoint].at(name);
}

std::uint64_t ResidentModels::resident_bytes() const {
  std::uint64_t n = 0;
  for (const auto& [_, t] : impl_->base) n += t.numel() * 4;
  for (const auto& m : impl_->tau)
    for (const auto& [_, t] : m) n += t.numel() * 4;
  return n;
}

void ResidentModels::merge(const MergeRequest& r, std::map<std::string, at::Tensor>& out, Reducer& reducer,
                           const DareMaskFn* dare_mask) const {
  validate_request(r, "");
  for (const auto& m : r.members) tau(static_cast<std::size_t>(m.index), impl_->names.front());  // range check
  SubsetSource src(*this, r);
  const GlobalStats stats = compute_global_stats(r, src, reducer);
  std::vector<at::Tensor> taus(r.members.size());
  for (const auto& name : impl_->names) {
    for (std::size_t i = 0; i < r.members.size(); ++i) taus[i] = tau(static_cast<std::size_t>(r.members[i].index), name);
    const at::Tensor merged = merge_tensor(r, stats, name, impl_->base.at(name), taus, 0, dare_mask);
    auto it = out.find(name);
    if (it != out.end() && it->second.sizes() == merged.sizes()) it->second.copy_(merged);
    else out[name] = merged;
  }
}

}  // namespace ms::merge
