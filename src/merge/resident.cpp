#include "mergesweep/merge/resident.hpp"

#include <ATen/ATen.h>

#include <cstring>
#include <mutex>
#include <tuple>

#include "kernels.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/io/hf_model.hpp"

namespace ms::merge {

struct ResidentModels::Impl {
  std::vector<std::string> names;
  std::map<std::string, at::Tensor> base;
  std::vector<std::map<std::string, at::Tensor>> tau;  // [checkpoint][name]
  // TIES trims depend only on (checkpoint, density, tensor), never on the subset: computed once.
  std::mutex trim_mu;
  std::map<std::tuple<std::size_t, std::uint64_t, std::string>, kernels::TrimRule> trims;

  const kernels::TrimRule& trim_rule(std::size_t ck, double density, const std::string& name) {
    std::uint64_t bits;
    std::memcpy(&bits, &density, sizeof bits);
    std::lock_guard<std::mutex> lock(trim_mu);
    const auto key = std::make_tuple(ck, bits, name);
    auto it = trims.find(key);
    if (it == trims.end()) it = trims.emplace(key, kernels::make_trim_rule(tau[ck].at(name), density)).first;
    return it->second;
  }
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
  // Fast in-place paths for the sweep's most common methods (bitwise equal to the generic path).
  const MethodId id = r.method->id;
  const bool fast_ta = id == MethodId::TaskArithmetic;
  const bool fast_ties = id == MethodId::Ties && r.params.choice("trim") == "per_tensor";
  if ((fast_ta || fast_ties) && dare_mask == nullptr) {
    std::vector<double> w;
    for (const auto& m : r.members) w.push_back(m.weight);
    std::vector<const at::Tensor*> taus(r.members.size());
    std::vector<const kernels::TrimRule*> rules(r.members.size());
    for (const auto& name : impl_->names) {
      const at::Tensor& b = impl_->base.at(name);
      auto it = out.find(name);
      if (it == out.end() || it->second.sizes() != b.sizes() || !it->second.is_contiguous()) {
        it = out.insert_or_assign(name, at::empty_like(b)).first;  // the output, allocated once
      }
      for (std::size_t i = 0; i < r.members.size(); ++i) {
        const auto ck = static_cast<std::size_t>(r.members[i].index);
        taus[i] = &tau(ck, name);
        if (fast_ties) rules[i] = &impl_->trim_rule(ck, r.members[i].density, name);
      }
      if (fast_ta) {
        kernels::task_arithmetic_into(it->second, b, taus, w, r.params.flag("normalize"), r.params.number("lambda"));
      } else {
        kernels::ties_into(it->second, b, taus, rules, w, r.params.flag("normalize"), r.params.number("lambda"));
      }
    }
    return;
  }
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
