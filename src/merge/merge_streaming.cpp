#include "mergesweep/merge/merge_streaming.hpp"

#include <ATen/ATen.h>

#include <chrono>
#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "mergesweep/core/error.hpp"
#include "mergesweep/core/version.hpp"
#include "mergesweep/io/aten_dtype.hpp"
#include "mergesweep/io/hf_model.hpp"

namespace ms::merge {
namespace {

// θ₀ and τᵢ straight from the mmapped files, upcast to float32 on demand.
class FileSource final : public TaskVectorSource {
 public:
  FileSource(const io::HfModel& base, const std::vector<io::HfModel>& members)
      : base_(base), members_(members), names_(base.tensor_names()) {}
  const std::vector<std::string>& tensor_names() const override { return names_; }
  at::Tensor base(const std::string& name) override { return base_.tensor(name).to(at::kFloat); }
  at::Tensor tau(std::size_t m, const std::string& name) override {
    return members_[m].tensor(name).to(at::kFloat) - base_.tensor(name).to(at::kFloat);
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
  for (const auto& spec : specs) {
    const at::Tensor b = src.base(spec.name);
    std::vector<at::Tensor> tau;
    for (std::size_t m = 0; m < members.size(); ++m) tau.push_back(src.tau(m, spec.name));
    rep.bytes_read += base.require(spec.name).nbytes() * (1 + members.size());
    const at::Tensor merged = merge_tensor(r, stats, spec.name, b, tau, 0, job.dare_mask);
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
    l2_sq += (merged - b).to(at::kDouble).pow(2).sum().item<double>();
    const at::Tensor out = merged.to(*io::to_scalar_type(spec.dtype)).contiguous();
    writer.write(spec.name, out);
    rep.bytes_written += spec.nbytes();
    ++rep.tensors;
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
