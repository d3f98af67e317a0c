#include "mergesweep/merge/resident.hpp"

#include <ATen/ATen.h>

#include <cstring>
#include <mutex>
#include <tuple>

#include "kernels.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/io/family_check.hpp"
#include "mergesweep/io/family_tensors.hpp"
#include "mergesweep/io/hf_model.hpp"
#include "mergesweep/io/lora_adapter.hpp"
#include "mergesweep/merge/registry.hpp"

namespace ms::merge {

struct ResidentModels::Impl {
  ResidentOptions options;
  std::vector<std::string> names;
  std::map<std::string, at::Tensor> base;                 // θ₀ (float32 under Float32TaskVectors)
  std::vector<std::map<std::string, at::Tensor>> models;  // [checkpoint][name]: θᵢ, or τᵢ in float32
  // [checkpoint][name]: a factored adapter's LoRA on the tensor (A, B on the CPU, a saved tensor
  // on the device), folded when a merge reads it. A tensor in neither map is the base's (τ = 0).
  std::vector<std::map<std::string, io::LoraChange>> folds;
  // Float32 scratch, one per factored member of a merge (the j-th takes slot j), each the size of
  // the largest tensor folded through it; kept between tensors and configs like the workspace.
  std::vector<at::Tensor> fold_slots;
  // TIES trims depend only on (checkpoint, density, tensor), never on the subset: computed once.
  std::mutex trim_mu;
  std::map<std::tuple<std::size_t, std::uint64_t, std::string>, kernels::TrimRule> trims;
  at::Tensor workspace;  // float32, the largest held tensor: the fast paths' output

  bool float32_tau() const { return options.residency == Residency::Float32TaskVectors; }
  // Float32TaskVectors, the older layout: τ formed once at load, θ₀ widened (FileDtype: as held).
  void lay_out_residency() {
    if (!float32_tau()) return;
    for (auto& ck : models)
      for (auto& [name, t] : ck) t = kernels::task_vector(t, base.at(name));
    for (auto& [name, t] : base) t = t.scalar_type() == at::kFloat ? t : t.to(at::kFloat);
  }
  // Fails naming `field` unless checkpoint `index` is loaded (a negative index is never one).
  void require_checkpoint(std::int64_t index, const char* field) const {
    if (index < 0 || index >= static_cast<std::int64_t>(models.size()))
      fail("", field, "checkpoint index " + std::to_string(index) + " is out of range (" +
                          std::to_string(models.size()) + " loaded)");
  }

  at::Tensor widened_base(const std::string& name) const {
    const at::Tensor& b = base.at(name);
    if (b.scalar_type() == at::kFloat) return b;
    return b.device().is_cpu() ? kernels::to_float32(b) : b.to(at::kFloat);
  }
  // θ_ck's tensor as every merge reads it: held as stored, the base's own (a tensor its adapter
  // leaves), or its adapter's fold (float32, io::fold_lora_into: the folded folder's tensor to the
  // bit) formed in fold slot `slot`, or in a fresh tensor when `slot` < 0. τ under Float32TaskVectors.
  at::Tensor member(std::size_t ck, const std::string& name, std::int64_t slot) {
    const auto held_it = models[ck].find(name);
    if (held_it != models[ck].end()) return held_it->second;
    const at::Tensor& b = base.at(name);
    const io::LoraChange* fold = fold_of(ck, name);
    if (fold == nullptr) return b;
    const auto opts = at::TensorOptions().dtype(at::kFloat).device(b.device());
    at::Tensor out;
    if (slot < 0) {
      out = at::empty(b.sizes(), opts);
    } else {
      const auto j = static_cast<std::size_t>(slot);
      if (fold_slots.size() <= j) fold_slots.resize(j + 1);
      if (!fold_slots[j].defined() || fold_slots[j].numel() < b.numel()) fold_slots[j] = at::empty({b.numel()}, opts);
      out = fold_slots[j].narrow(0, 0, b.numel()).view(b.sizes());
    }
    io::fold_lora_into(out, *fold, b);
    return out;
  }
  const io::LoraChange* fold_of(std::size_t ck, const std::string& name) const {
    if (ck >= folds.size()) return nullptr;  // checkpoints loaded without a family check: none factored
    const auto it = folds[ck].find(name);
    return it == folds[ck].end() ? nullptr : &it->second;
  }
  // The request's members' tensors, the factored ones folded into slots 0, 1, ...
  std::vector<at::Tensor> members_of(const MergeRequest& r, const std::string& name) {
    std::vector<at::Tensor> out;
    std::int64_t slot = 0;
    for (const auto& m : r.members) {
      const auto ck = static_cast<std::size_t>(m.index);
      out.push_back(member(ck, name, fold_of(ck, name) != nullptr ? slot++ : -1));
    }
    return out;
  }
  at::Tensor tau(std::size_t ck, const std::string& name) {
    if (float32_tau()) return models[ck].at(name);
    return kernels::task_vector(member(ck, name, -1), base.at(name));
  }

  // The rule is made from τ formed in `scratch` (float32, the tensor's shape): the caller's
  // output buffer, not yet written. A fresh τ per rule would leave tensor-sized holes in the heap.
  // `held_model` is member(ck, name).
  const kernels::TrimRule& trim_rule(std::size_t ck, double density, const std::string& name, const at::Tensor& held_model,
                                     const at::Tensor& scratch) {
    std::uint64_t bits;
    std::memcpy(&bits, &density, sizeof bits);
    std::lock_guard<std::mutex> lock(trim_mu);
    const auto key = std::make_tuple(ck, bits, name);
    auto it = trims.find(key);
    if (it == trims.end()) {
      if (!float32_tau()) kernels::task_vector_into(scratch, held_model, base.at(name));
      it = trims.emplace(key, kernels::make_trim_rule(float32_tau() ? held_model : scratch, density)).first;
    }
    return it->second;
  }

  // The fast paths' output for one tensor: a view of the workspace.
  at::Tensor output_for(const at::Tensor& like) {
    if (!workspace.defined() || workspace.numel() < like.numel())
      workspace = at::empty({like.numel()}, at::TensorOptions().dtype(at::kFloat).device(like.device()));
    return workspace.narrow(0, 0, like.numel()).view(like.sizes());
  }
  bool merge_fast(const MergeRequest& r, const std::string& name, const at::Tensor& out);
  void load_checkpoint(const io::FamilyReport& family, const io::FamilyTensors& inputs, std::size_t k);
  // Calls fn(row0, rows, θ₀ block in float32, the members' τ blocks) over the tensor's row blocks;
  // `held` are the members' tensors (members_of).
  void for_each_row_block(const std::string& name, const std::vector<at::Tensor>& held,
                          const std::function<void(std::int64_t, std::int64_t, const at::Tensor&,
                                                   const std::vector<at::Tensor>&)>& fn) const;
  void merge_in_row_blocks(const MergeRequest& r, const GlobalStats& stats, const std::string& name, TensorPass pass,
                           const at::Tensor& out, const DareMaskFn* dare_mask);
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

// A tensor read into memory the process owns, on `device` (a mapped file view is not resident).
at::Tensor held(const at::Tensor& t, c10::Device device) {
  if (device.is_cpu()) return t.clone(at::MemoryFormat::Contiguous);
  return t.to(device, /*non_blocking=*/false, /*copy=*/true).contiguous();
}

}  // namespace

ResidentModels::ResidentModels(const std::string& base_path, const std::vector<std::string>& checkpoint_paths,
                               std::vector<std::string> names, ResidentOptions options)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.options = options;
  const io::HfModel base = io::HfModel::open(base_path);
  std::vector<io::HfModel> cks;
  cks.reserve(checkpoint_paths.size());
  for (const auto& path : checkpoint_paths) cks.push_back(io::HfModel::open(path));
  std::vector<const io::HfModel*> ptrs;
  for (const auto& ck : cks) ptrs.push_back(&ck);
  // The one compatibility check: each checkpoint is then held in its own stored dtype, and every
  // merge path widens each tensor from that dtype (kernels::StoredSpan, task_vector).
  const io::FamilyReport family = io::check_family(base, ptrs, {}, options.vocab);
  const io::FamilyTensors inputs(family, base, ptrs);  // tied heads, vocabularies aligned by token
  m.names = names.empty() ? family.tensor_names : std::move(names);
  for (const auto& name : m.names) m.base[name] = held(inputs.tensor(0, name), options.device);
  m.models.resize(cks.size());
  m.folds.resize(cks.size());
  for (std::size_t k = 0; k < cks.size(); ++k) m.load_checkpoint(family, inputs, k);
  m.lay_out_residency();
}

ResidentModels::ResidentModels(std::map<std::string, at::Tensor> base,
                               std::vector<std::map<std::string, at::Tensor>> checkpoints, ResidentOptions options)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.options = options;
  for (const auto& [name, t] : base) {
    for (std::size_t k = 0; k < checkpoints.size(); ++k) {
      const auto it = checkpoints[k].find(name);
      if (it == checkpoints[k].end() || it->second.sizes() != t.sizes() || it->second.device() != options.device)
        fail("", "models", "checkpoint " + std::to_string(k) + "'s " + name + " is missing, of another shape or on another device");
    }
    if (t.device() != options.device) fail("", "models", "the base's " + name + " is on another device");
    m.names.push_back(name);
  }
  m.base = std::move(base);
  m.models = std::move(checkpoints);
  m.lay_out_residency();
}

// Checkpoint k's tensors: as stored, or, for an adapter check_family marked factored, its A, B
// and saved tensors (the older float32-τ layout forms τ at load, so it holds every adapter dense).
void ResidentModels::Impl::load_checkpoint(const io::FamilyReport& family, const io::FamilyTensors& inputs,
                                           std::size_t k) {
  const io::FactoredAdapter* adapter = float32_tau() ? nullptr : family.factored.at(k).get();
  for (const auto& name : names) {
    // Rows aligned by token are float32 tensors of their own (check_family counts them so).
    if (adapter == nullptr || !inputs.is_stored(k + 1, name) || !inputs.is_stored(0, name)) {
      models[k][name] = held(inputs.tensor(k + 1, name), options.device);
      continue;
    }
    const io::LoraChange* c = adapter->change(inputs.source_name(k + 1, name));
    if (c == nullptr) continue;  // the base's tensor
    if (!c->folds()) {
      models[k][name] = held(c->replaced, options.device);
      continue;
    }
    io::LoraChange& f = folds[k][name];
    f = *c;
    f.a = held(c->a, c10::Device(c10::DeviceType::CPU));  // B·A is formed on the CPU (fold_lora_into)
    f.b = held(c->b, c10::Device(c10::DeviceType::CPU));
    if (c->replaced.defined()) f.replaced = held(c->replaced, options.device);
  }
}

ResidentModels::~ResidentModels() = default;
ResidentModels::ResidentModels(ResidentModels&&) noexcept = default;

const std::vector<std::string>& ResidentModels::tensor_names() const { return impl_->names; }
std::size_t ResidentModels::num_checkpoints() const { return impl_->models.size(); }
c10::Device ResidentModels::device() const { return impl_->options.device; }
at::Tensor ResidentModels::base(const std::string& name) const { return impl_->widened_base(name); }
const at::Tensor& ResidentModels::held_base(const std::string& name) const { return impl_->base.at(name); }

at::Tensor ResidentModels::tau(std::size_t checkpoint, const std::string& name) const {
  impl_->require_checkpoint(static_cast<std::int64_t>(checkpoint), "models");
  return impl_->tau(checkpoint, name);
}

void ResidentModels::baseline_each(std::int64_t checkpoint, const MergedTensorSink& sink) const {
  if (checkpoint >= 0) impl_->require_checkpoint(checkpoint, "models");
  for (const auto& name : impl_->names) {
    const at::Tensor& b = impl_->base.at(name);
    at::Tensor out = impl_->output_for(b);
    if (checkpoint < 0) {
      out.copy_(b);  // exact widening
    } else {
      const at::Tensor held = impl_->member(static_cast<std::size_t>(checkpoint), name, 0);
      if (impl_->float32_tau()) out.copy_(held);
      else kernels::task_vector_into(out, held, b);
      out.add_(b);  // τ + θ₀ is θ₀ + τ to the bit: IEEE addition commutes, θ₀ widens exactly
    }
    sink(name, out);
  }
}

std::uint64_t ResidentModels::resident_bytes() const {
  std::uint64_t n = 0;
  for (const auto& [_, t] : impl_->base) n += t.nbytes();
  for (const auto& m : impl_->models)
    for (const auto& [_, t] : m) n += t.nbytes();
  for (const auto& m : impl_->folds)
    for (const auto& [_, c] : m) n += c.nbytes();
  return n;
}

// A method's fused CPU kernel (task arithmetic, per-tensor TIES), in place in `out`: bitwise the
// generic path (tests/merge/test_resident.cpp). The kernels read θᵢ and θ₀ as stored and form τ
// in their loops, so no member's τ is held whole (only a TIES trim rule, once per tensor, forms
// one, in `out` before the kernel writes it). False when the method's kernel declines.
bool ResidentModels::Impl::merge_fast(const MergeRequest& r, const std::string& name, const at::Tensor& out) {
  const std::vector<at::Tensor> held = members_of(r, name);
  std::vector<const at::Tensor*> held_models;
  for (const auto& h : held) held_models.push_back(&h);
  const auto rule = [&](std::size_t i) -> const kernels::TrimRule& {
    const auto& mem = r.members[i];
    return trim_rule(static_cast<std::size_t>(mem.index), mem.density, name, held[i], out);
  };
  // float32_tau: held_models are τ and the base θ₀ in float32.
  FusedResult ignored;
  return r.method->merge_fused_cpu(FusedCall{r, name, out, base.at(name), held_models, float32_tau(), rule, false},
                                   ignored);
}

void ResidentModels::Impl::for_each_row_block(
    const std::string& name, const std::vector<at::Tensor>& held_models,
    const std::function<void(std::int64_t, std::int64_t, const at::Tensor&, const std::vector<at::Tensor>&)>& fn) const {
  const at::Tensor& held_base = base.at(name);
  const std::int64_t rows = held_base.size(0);
  const std::int64_t block = rows_per_block(rows > 0 ? held_base.numel() / rows : 1);
  std::vector<at::Tensor> taus(held_models.size());
  for (std::int64_t r0 = 0; r0 < rows; r0 += block) {
    const std::int64_t len = std::min(block, rows - r0);
    const at::Tensor b_part = held_base.narrow(0, r0, len);
    const at::Tensor b32 = b_part.scalar_type() == at::kFloat ? b_part : kernels::to_float32(b_part.contiguous());
    for (std::size_t i = 0; i < held_models.size(); ++i) {
      const at::Tensor part = held_models[i].narrow(0, r0, len);
      taus[i] = float32_tau() ? part : kernels::task_vector(part, b_part);
    }
    fn(r0, len, b32, taus);
  }
}

// The float32 working set is the output plus a few blocks: no member's τ is held whole (a TIES
// trim rule forms one τ at a time, in `out` before it is written).
void ResidentModels::Impl::merge_in_row_blocks(const MergeRequest& r, const GlobalStats& stats, const std::string& name,
                                               TensorPass pass, const at::Tensor& out, const DareMaskFn* dare_mask) {
  const std::int64_t row_elems = out.numel() / out.size(0);
  const std::vector<at::Tensor> held = members_of(r, name);
  if (pass == TensorPass::RowBlocks) {
    for_each_row_block(name, held, [&](std::int64_t r0, std::int64_t len, const at::Tensor& b, const std::vector<at::Tensor>& t) {
      out.narrow(0, r0, len).copy_(merge_tensor(r, stats, name, b, t, r0 * row_elems, dare_mask));
    });
  } else if (pass == TensorPass::TrimRulesThenRows) {
    std::vector<const kernels::TrimRule*> rules;
    for (std::size_t i = 0; i < r.members.size(); ++i)
      rules.push_back(&trim_rule(static_cast<std::size_t>(r.members[i].index), r.members[i].density, name, held[i], out));
    for_each_row_block(name, held, [&](std::int64_t r0, std::int64_t len, const at::Tensor& b, const std::vector<at::Tensor>& t) {
      std::vector<at::Tensor> trimmed;
      for (std::size_t i = 0; i < t.size(); ++i) trimmed.push_back(kernels::apply_trim_rule(t[i], *rules[i], r0 * row_elems));
      out.narrow(0, r0, len).copy_(r.method->merge_trimmed(r, name, b, trimmed));
    });
  } else {  // StockRatioThenRows: the Gram matrix over the blocks, then the interpolation over them again
    const GramSpec spec = r.method->gram_spec(r.params);
    kernels::StockGram gram(out, r.members.size(), spec.per_row);
    for_each_row_block(name, held, [&](std::int64_t r0, std::int64_t, const at::Tensor&, const std::vector<at::Tensor>& t) {
      gram.add(r0, t);
    });
    const at::Tensor ratio = gram.ratio(spec.angle_mean);
    const bool per_row = spec.per_row && out.dim() >= 2;
    for_each_row_block(name, held, [&](std::int64_t r0, std::int64_t len, const at::Tensor& b, const std::vector<at::Tensor>& t) {
      out.narrow(0, r0, len).copy_(r.method->merge_with_ratio(r, b, t, per_row ? ratio.narrow(0, r0, len) : ratio));
    });
  }
}

void ResidentModels::merge_each(const MergeRequest& r, Reducer& reducer, const MergedTensorSink& sink,
                                const DareMaskFn* dare_mask) const {
  validate_request(r, "");
  for (const auto& m : r.members) impl_->require_checkpoint(m.index, "members");
  const bool fast = r.method->fused_on_cpu(r.params) && dare_mask == nullptr && impl_->options.device.is_cpu() &&
                    impl_->options.cpu_fast_paths;
  if (fast) {
    // A kernel declines on the request's properties, so at the first tensor or never: then the
    // generic path below merges every tensor.
    bool declined = false;
    for (std::size_t t = 0; t < impl_->names.size() && !declined; ++t) {
      const std::string& name = impl_->names[t];
      const at::Tensor out = impl_->output_for(impl_->base.at(name));
      declined = !impl_->merge_fast(r, name, out);
      if (declined && t > 0) fail("", r.method->name, "internal: the fused kernel declined tensor '" + name + "' only");
      if (!declined) sink(name, out);
    }
    if (!declined) return;
  }
  SubsetSource src(*this, r);
  const GlobalStats stats = compute_global_stats(r, src, reducer);
  std::vector<at::Tensor> taus(r.members.size());
  for (const auto& name : impl_->names) {
    const at::Tensor& held_base = impl_->base.at(name);
    const TensorPass pass = tensor_pass(r, name, held_base.dim());
    if (pass == TensorPass::WholeTensor || held_base.dim() == 0 || held_base.numel() <= kRowBlockElements) {
      const std::vector<at::Tensor> held = impl_->members_of(r, name);
      for (std::size_t i = 0; i < r.members.size(); ++i)
        taus[i] = impl_->float32_tau() ? held[i] : kernels::task_vector(held[i], held_base);
      sink(name, merge_tensor(r, stats, name, base(name), taus, 0, dare_mask));
      continue;
    }
    const at::Tensor out = impl_->output_for(held_base);
    impl_->merge_in_row_blocks(r, stats, name, pass, out, dare_mask);
    sink(name, out);
  }
}

void ResidentModels::merge(const MergeRequest& r, std::map<std::string, at::Tensor>& out, Reducer& reducer,
                           const DareMaskFn* dare_mask) const {
  merge_each(r, reducer, [&](const std::string& name, const at::Tensor& merged) {
    auto it = out.find(name);
    if (it != out.end() && it->second.sizes() == merged.sizes() && it->second.is_contiguous()) it->second.copy_(merged);
    else out[name] = merged.clone(at::MemoryFormat::Contiguous);
  }, dare_mask);
}

}  // namespace ms::merge
