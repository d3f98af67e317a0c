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
#include "mergesweep/io/family_check.hpp"
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

namespace {

// What one tensor's merge needs besides the tensor: the inputs, the request and its statistics.
struct TensorMergeContext {
  const StreamingJob& job;
  const io::HfModel& base;
  const std::vector<io::HfModel>& members;
  const GlobalStats& stats;
  const std::string& describe;
};

// Names the input that carries a NaN/Inf when there is one, else blames the merge.
[[noreturn]] void fail_non_finite(const TensorMergeContext& c, const std::string& name, const std::string& what) {
  const auto scan = [&](const io::HfModel& model, const char* msg) {
    const io::TensorEntry& e = model.require(name);
    if (io::count_non_finite(e.dtype, model.shard_of(name).data(e), e.nbytes()) > 0) fail(model.path(), "'" + name + "'", msg);
  };
  scan(c.base, "has NaN or Inf values");
  for (const auto& m : c.members) scan(m, "has NaN or Inf values, so the merge would too");
  fail(c.job.out_dir, "'" + name + "'", what + " (" + c.describe + ")");
}

// The commonest one-off merge reads each input once (see kernels::task_arithmetic_stream).
// Returns the squared change from the base.
double merge_task_arithmetic(const TensorMergeContext& c, const io::TensorSpec& spec, at::Tensor& out) {
  const MergeRequest& r = c.job.request;
  const io::TensorEntry& entry = c.base.require(spec.name);
  // Each member at its own stored dtype (io::check_family accepted only float dtypes, same shapes).
  const auto span_of = [&](const io::HfModel& m) {
    const io::TensorEntry& e = m.require(spec.name);
    return kernels::StoredSpan{m.shard_of(spec.name).data(e), *io::to_scalar_type(e.dtype)};
  };
  std::vector<kernels::StoredSpan> inputs;
  for (const auto& m : c.members) inputs.push_back(span_of(m));
  std::vector<double> w;
  for (const auto& mem : r.members) w.push_back(mem.weight);
  const auto st = kernels::task_arithmetic_stream(out.data_ptr(), out.scalar_type(), span_of(c.base), inputs,
                                                  entry.numel(), w, r.params.flag("normalize"),
                                                  r.params.number("lambda"));
  if (st.non_finite > 0)
    fail_non_finite(c, spec.name, std::to_string(st.non_finite) + " merged values are NaN or Inf");
  return st.sq_change;
}

// Any method through merge_tensor(). Tensors a method merges elementwise (TensorPass::RowBlocks)
// go through in row blocks (merge.hpp): the float32 working set stays in cache and memory stays
// small whatever the tensor size; the others are merged whole. DARE masks depend on the element
// index, so blocks give the same masks as whole tensors. Returns the squared change from the base.
double merge_in_blocks(const TensorMergeContext& c, const io::TensorSpec& spec, at::Tensor& out) {
  const io::TensorEntry& entry = c.base.require(spec.name);
  const std::int64_t rows = entry.shape.empty() ? 1 : entry.shape[0];
  const std::int64_t row_elems = rows > 0 ? entry.numel() / rows : 0;
  const bool elementwise =
      tensor_pass(c.job.request, spec.name, static_cast<std::int64_t>(entry.shape.size())) == TensorPass::RowBlocks;
  const std::int64_t block = elementwise && !entry.shape.empty() && row_elems > 0 ? rows_per_block(row_elems)
                                                                                  : std::max<std::int64_t>(rows, 1);
  double sq = 0;
  for (std::int64_t r0 = 0; r0 < rows || (rows == 0 && r0 == 0); r0 += block) {
    const std::int64_t len = std::min(block, rows - r0);
    auto part = [&](const at::Tensor& t) { return entry.shape.empty() || len == rows ? t : t.narrow(0, r0, len); };
    const at::Tensor b = kernels::to_float32(part(c.base.tensor(spec.name))).to(c.job.device);
    std::vector<at::Tensor> tau;
    for (const auto& m : c.members) tau.push_back(kernels::to_float32(part(m.tensor(spec.name))).to(c.job.device).sub_(b));
    const at::Tensor merged = merge_tensor(c.job.request, c.stats, spec.name, b, tau, r0 * row_elems, c.job.dare_mask);
    if (!merged.isfinite().all().item<bool>()) fail_non_finite(c, spec.name, "the merged tensor has NaN or Inf values");
    sq += (merged - b).pow(2).sum(at::kDouble).item<double>();  // double accumulation, no double copy
    part(out).copy_(merged.to(at::kCPU));
    if (rows == 0) break;
  }
  return sq;
}

// config.json from the base (torch_dtype following the output dtype), the base's other files,
// and mergesweep_merge.json recording how the merge was made.
void write_metadata(io::HfModelWriter& writer, const StreamingJob& job, const io::HfModel& base,
                    std::optional<io::DType> forced, const std::string& describe, double l2_from_base) {
  const MergeRequest& r = job.request;
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
  record["l2_from_base"] = l2_from_base;
  writer.add_text_file("mergesweep_merge.json", record.dump(2) + "\n");
}

}  // namespace

StreamingReport merge_streaming(const StreamingJob& job, const std::function<void(std::size_t, std::size_t)>& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const MergeRequest& r = job.request;
  validate_request(r, job.source_file);
  if (job.member_paths.size() != r.members.size()) fail(job.source_file, "models", "internal: one path per member");
  const io::HfModel base = io::HfModel::open(job.base_path);
  if (!base.is_folder()) fail(job.base_path, "", "the base must be a model folder with config.json");
  std::vector<io::HfModel> members;
  for (const auto& p : job.member_paths) members.push_back(io::HfModel::open(p));
  std::vector<const io::HfModel*> ptrs;
  std::vector<std::string> fields;
  for (std::size_t i = 0; i < members.size(); ++i) {
    ptrs.push_back(&members[i]);
    fields.push_back("models[" + std::to_string(i) + "].model");
  }
  io::check_family(base, ptrs, fields);  // the one compatibility check; mixed float dtypes are widened

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

  const TensorMergeContext ctx{job, base, members, stats, describe};
  StreamingReport rep;
  double l2_sq = 0;
  for (const auto& spec : specs) {
    const io::TensorEntry& entry = base.require(spec.name);
    at::Tensor out = at::empty(entry.shape, at::TensorOptions().dtype(*io::to_scalar_type(spec.dtype)));
    // The fused single-pass kernel reads host memory; other devices take the generic path.
    l2_sq += r.method->id == MethodId::TaskArithmetic && job.device.is_cpu()
                 ? merge_task_arithmetic(ctx, spec, out)
                 : merge_in_blocks(ctx, spec, out);
    rep.bytes_read += entry.nbytes() * (1 + members.size());
    writer.write(spec.name, out);
    rep.bytes_written += spec.nbytes();
    ++rep.tensors;
    src.release(spec.name);
    if (progress) progress(rep.tensors, specs.size());
  }
  write_metadata(writer, job, base, forced, describe, std::sqrt(l2_sq));
  writer.commit();
  rep.l2_from_base = std::sqrt(l2_sq);
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace ms::merge
