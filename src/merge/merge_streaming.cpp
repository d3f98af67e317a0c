#include "mergesweep/merge/merge_streaming.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "mergesweep/core/error.hpp"
#include "mergesweep/core/version.hpp"
#include "mergesweep/io/aten_dtype.hpp"
#include "mergesweep/io/hf_model.hpp"
#include "mergesweep/io/integrity.hpp"
#include "kernels.hpp"

namespace ms::merge {
namespace {

// θ₀ and τᵢ straight from the mmapped files, upcast to float32 on demand.
class FileSource final : public TaskVectorSource {
 public:
  FileSource(const io::HfModel& base, const std::vector<io::HfModel>& members)
      : base_(base), members_(members), names_(base.tensor_names()) {}
  const std::vector<std::string>& tensor_names() const override { return names_; }
  at::Tensor base(const std::string& name) override { return kernels::to_float32(base_.tensor(name)); }
  at::Tensor tau(std::size_t m, const std::string& name) override {
    return kernels::to_float32(members_[m].tensor(name)).sub_(base(name));
  }
  // Drops the mapped pages of a finished tensor from this process (they stay in the page cache),
  // so peak RSS follows the tensors in flight, not every byte read so far.
  void release(const std::string& name) {
    base_.shard_of(name).release(base_.require(name));
    for (const auto& m : members_) m.shard_of(name).release(m.require(name));
  }

 private:
  const io::HfModel& base_;
  const std::vector<io::HfModel>& members_;
  std::vector<std::string> names_;
};

std::string shape_text(const std::vector<std::int64_t>& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

void check_members_match_base(const io::HfModel& base, const std::vector<io::HfModel>& members) {
  for (const auto& m : members) {
    for (const auto& name : base.tensor_names()) {
      const io::TensorEntry& b = base.require(name);
      const io::TensorEntry* e = m.find(name);
      if (e == nullptr) fail(m.path(), "'" + name + "'", "tensor of the base model is missing from this model");
      if (e->shape != b.shape) {
        fail(m.path(), "'" + name + "'", "shape " + shape_text(e->shape) + " differs from the base's " + shape_text(b.shape));
      }
      if (e->dtype != b.dtype) {
        fail(m.path(), "'" + name + "'", std::string("dtype ") + io::dtype_name(e->dtype) + " differs from the base's " +
                                             io::dtype_name(b.dtype));
      }
      if (!io::to_scalar_type(e->dtype) || !io::dtype_is_float(e->dtype)) {
        fail(m.path(), "'" + name + "'", std::string("dtype ") + io::dtype_name(e->dtype) + " cannot be merged");
      }
    }
    for (const auto& name : m.tensor_names()) {
      if (!base.find(name)) fail(m.path(), "'" + name + "'", "tensor is not in the base model " + base.path());
    }
  }
}

const char* torch_dtype_name(io::DType d) {
  return d == io::DType::BF16 ? "bfloat16" : d == io::DType::F16 ? "float16" : "float32";
}

}  // namespace

io::DType parse_output_dtype(const std::string& name, const std::string& file) {
  if (name == "bfloat16" || name == "bf16") return io::DType::BF16;
  if (name == "float16" || name == "fp16" || name == "half") return io::DType::F16;
  if (name == "float32" || name == "fp32" || name == "float") return io::DType::F32;
  fail(file, "dtype", "'" + name + "' is not an output dtype; expected bfloat16, float16 or float32");
}

StreamingReport merge_streaming(const StreamingJob& job, const std::function<void(std::size_t, std::size_t)>& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const MergeRequest& r = job.request;
  validate_request(r, job.source_file);
  if (job.member_paths.size() != r.members.size()) fail(job.source_file, "models", "internal: one path per member");
  const io::HfModel base = io::HfModel::open(job.base_path);
  if (!base.is_folder()) fail(job.base_path, "", "the base must be a model folder with config.json");
  std::vector<io::HfModel> members;
  for (const auto& p : job.member_paths) members.push_back(io::HfModel::open(p));
  check_members_match_base(base, members);

  FileSource src(base, members);
  LocalReducer reducer;
  const GlobalStats stats = compute_global_stats(r, src, reducer);

  std::optional<io::DType> forced;
  if (!job.out_dtype.empty()) forced = parse_output_dtype(job.out_dtype, job.source_file);
  std::vector<io::TensorSpec> specs;
  for (const auto& name : src.tensor_names()) {
    const auto& e = base.require(name);
    specs.push_back({name, forced ? *forced : e.dtype, e.shape});
  }
  const std::string describe = r.describe();
  io::HfModelWriter writer(job.out_dir, specs, job.max_shard_bytes,
                           {{"format", "pt"}, {"mergesweep_merge", describe}});

  StreamingReport rep;
  double l2_sq = 0;
  const std::size_t total = specs.size();
  // Elementwise methods go through large tensors in row blocks of about kChunkElements: the
  // float32 working set stays in cache and memory stays small whatever the tensor size. DARE
  // masks depend on the element index, so blocks give the same masks as whole tensors.
  constexpr std::int64_t kChunkElements = 1 << 20;
  const bool elementwise = effective_scope(*r.method, r.params) == Scope::Elementwise;
  for (const auto& spec : specs) {
    const io::TensorEntry& entry = base.require(spec.name);
    const std::int64_t numel = entry.numel();
    const std::int64_t rows = entry.shape.empty() ? 1 : entry.shape[0];
    const std::int64_t row_elems = rows > 0 ? numel / rows : 0;
    const std::int64_t block = elementwise && !entry.shape.empty() && row_elems > 0
                                   ? std::max<std::int64_t>(1, kChunkElements / row_elems)
                                   : std::max<std::int64_t>(rows, 1);
    at::Tensor out = at::empty(entry.shape, at::TensorOptions().dtype(*io::to_scalar_type(spec.dtype)));
    if (r.method->id == MethodId::TaskArithmetic && job.device.is_cpu()) {
      // The commonest one-off merge reads each input once (see kernels::task_arithmetic_stream).
      std::vector<const void*> inputs;
      for (const auto& m : members) inputs.push_back(m.shard_of(spec.name).data(m.require(spec.name)));
      std::vector<double> w;
      for (const auto& mem : r.members) w.push_back(mem.weight);
      const auto st = kernels::task_arithmetic_stream(out.data_ptr(), out.scalar_type(),
                                                      base.shard_of(spec.name).data(entry), inputs,
                                                      *io::to_scalar_type(entry.dtype), numel, w,
                                                      r.params.flag("normalize"), r.params.number("lambda"));
      l2_sq += st.sq_change;
      if (st.non_finite > 0) {
        // Name the input that carries the NaN/Inf when there is one.
        const auto scan = [&](const io::HfModel& model, const char* what) {
          const io::TensorEntry& e = model.require(spec.name);
          if (io::count_non_finite(e.dtype, model.shard_of(spec.name).data(e), e.nbytes()) > 0) {
            fail(model.path(), "'" + spec.name + "'", what);
          }
        };
        scan(base, "has NaN or Inf values");
        for (const auto& m : members) scan(m, "has NaN or Inf values, so the merge would too");
        fail(job.out_dir, "'" + spec.name + "'",
             std::to_string(st.non_finite) + " merged values are NaN or Inf (" + describe + ")");
      }
    } else {
      for (std::int64_t r0 = 0; r0 < rows || (rows == 0 && r0 == 0); r0 += block) {
        const std::int64_t len = std::min(block, rows - r0);
        auto part = [&](const at::Tensor& t) { return entry.shape.empty() || len == rows ? t : t.narrow(0, r0, len); };
        const at::Tensor b = kernels::to_float32(part(base.tensor(spec.name))).to(job.device);
        std::vector<at::Tensor> tau;
        for (std::size_t m = 0; m < members.size(); ++m)
          tau.push_back(kernels::to_float32(part(members[m].tensor(spec.name))).to(job.device).sub_(b));
        const at::Tensor merged = merge_tensor(r, stats, spec.name, b, tau, r0 * row_elems, job.dare_mask);
        if (!merged.isfinite().all().item<bool>()) {
          // Name the input that carries the NaN/Inf when there is one.
          if (!b.isfinite().all().item<bool>()) fail(base.path(), "'" + spec.name + "'", "has NaN or Inf values");
          for (std::size_t m = 0; m < members.size(); ++m) {
            if (!tau[m].isfinite().all().item<bool>()) {
              fail(members[m].path(), "'" + spec.name + "'", "has NaN or Inf values, so the merge would too");
            }
          }
          fail(job.out_dir, "'" + spec.name + "'", "the merged tensor has NaN or Inf values (" + describe + ")");
        }
        l2_sq += (merged - b).pow(2).sum(at::kDouble).item<double>();  // double accumulation, no double copy
        part(out).copy_(merged.to(at::kCPU));
        if (rows == 0) break;
      }
    }
    rep.bytes_read += entry.nbytes() * (1 + members.size());
    writer.write(spec.name, out);
    rep.bytes_written += spec.nbytes();
    ++rep.tensors;
    src.release(spec.name);
    if (progress) progress(rep.tensors, total);
  }

  // config.json from the base, with torch_dtype following the output dtype.
  nlohmann::ordered_json cfg = nlohmann::ordered_json::parse(base.config()->text);
  if (forced) cfg["torch_dtype"] = torch_dtype_name(*forced);
  writer.set_config_text(cfg.dump(2) + "\n");
  writer.copy_passthrough_files(base.path());
  nlohmann::ordered_json record;
  record["mergesweep_version"] = kVersion;
  record["git_revision"] = kGitRevision;
  record["method"] = r.method->name;
  record["params"] = r.params.text();
  record["base"] = job.base_path;
  nlohmann::ordered_json ms = nlohmann::ordered_json::array();
  for (std::size_t i = 0; i < r.members.size(); ++i) {
    ms.push_back({{"path", job.member_paths[i]}, {"weight", r.members[i].weight}, {"density", r.members[i].density}});
  }
  record["models"] = ms;
  record["describe"] = describe;
  record["l2_from_base"] = std::sqrt(l2_sq);
  writer.add_text_file("mergesweep_merge.json", record.dump(2) + "\n");
  writer.commit();
  rep.l2_from_base = std::sqrt(l2_sq);
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace ms::merge
