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
#include "mergesweep/io/family_tensors.hpp"
#include "mergesweep/io/fs_util.hpp"
#include "mergesweep/io/hf_model.hpp"
#include "mergesweep/io/integrity.hpp"
#include "kernels.hpp"
#include "mergekit_settings.hpp"

namespace ms::merge {
namespace {

// θ₀ and τᵢ straight from the mmapped files (through io::FamilyTensors: tied heads, vocabularies
// aligned by token), upcast to float32 on demand.
class FileSource final : public TaskVectorSource {
 public:
  FileSource(const io::FamilyTensors& family, const std::vector<std::string>& names)
      : family_(family), names_(names) {}
  const std::vector<std::string>& tensor_names() const override { return names_; }
  at::Tensor base(const std::string& name) override { return kernels::to_float32(family_.tensor(0, name)); }
  at::Tensor tau(std::size_t m, const std::string& name) override {
    return kernels::to_float32(family_.tensor(m + 1, name)).sub_(base(name));
  }
  // Drops the mapped pages of a finished tensor from this process (they stay in the page cache),
  // so peak RSS follows the tensors in flight, not every byte read so far.
  void release(const std::string& name) { family_.release(name); }

 private:
  const io::FamilyTensors& family_;
  const std::vector<std::string>& names_;
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
  const MergeRequest& request;  // the job's, or this tensor's own (mergekit settings)
  const io::FamilyTensors& family;  // model 0 the base, m + 1 member m
  const GlobalStats& stats;
  const std::string& describe;
};

// Names the input that carries a NaN/Inf when there is one, else blames the merge.
[[noreturn]] void fail_non_finite(const TensorMergeContext& c, const std::string& name, const std::string& what) {
  for (std::size_t m = 0; m < c.family.num_models(); ++m) {
    if (c.family.tensor(m, name).isfinite().all().item<bool>()) continue;
    const std::string path = m == 0 ? c.job.base_path : c.job.member_paths[m - 1];
    fail(path, "'" + c.family.source_name(m, name) + "'",
         m == 0 ? "has NaN or Inf values" : "has NaN or Inf values, so the merge would too");
  }
  fail(c.job.out_dir, "'" + name + "'", what + " (" + c.describe + ")");
}

// A method's fused CPU kernel on the whole tensor (task arithmetic reads each input once, see
// kernels::task_arithmetic_stream), writing the output dtype. Returns the squared change from the
// base, or nothing when the method has no such kernel for these inputs.
std::optional<double> merge_fused(const TensorMergeContext& c, const io::TensorSpec& spec, at::Tensor& out) {
  const MergeRequest& r = c.request;
  if (!c.job.device.is_cpu() || !r.method->fused_on_cpu(r.params) || c.job.dare_mask) return std::nullopt;
  // Each input at its own stored dtype (io::check_family accepted only float dtypes; aligned
  // vocabulary rows are float32); `held` keeps formed tensors alive through the pass.
  std::vector<at::Tensor> held;
  for (std::size_t m = 0; m < c.family.num_models(); ++m) held.push_back(c.family.tensor(m, spec.name).contiguous());
  std::vector<const at::Tensor*> members;
  for (std::size_t m = 1; m < held.size(); ++m) members.push_back(&held[m]);
  FusedResult st;
  if (!r.method->merge_fused_cpu(FusedCall{r, spec.name, out, held[0], members, false, {}, true}, st)) return std::nullopt;
  if (st.non_finite > 0)
    fail_non_finite(c, spec.name, std::to_string(st.non_finite) + " merged values are NaN or Inf");
  return st.sq_change;
}

// Any method through merge_tensor(). Tensors a method merges elementwise (TensorPass::RowBlocks)
// go through in row blocks (merge.hpp): the float32 working set stays in cache and memory stays
// small whatever the tensor size; the others are merged whole. DARE masks depend on the element
// index, so blocks give the same masks as whole tensors. Returns the squared change from the base.
double merge_in_blocks(const TensorMergeContext& c, const io::TensorSpec& spec, at::Tensor& out) {
  const std::vector<std::int64_t>& shape = spec.shape;
  const std::int64_t rows = shape.empty() ? 1 : shape[0];
  const std::int64_t row_elems = rows > 0 ? out.numel() / rows : 0;
  const bool elementwise =
      tensor_pass(c.request, spec.name, static_cast<std::int64_t>(shape.size())) == TensorPass::RowBlocks;
  const std::int64_t block = elementwise && !shape.empty() && row_elems > 0 ? rows_per_block(row_elems)
                                                                            : std::max<std::int64_t>(rows, 1);
  double sq = 0;
  for (std::int64_t r0 = 0; r0 < rows || (rows == 0 && r0 == 0); r0 += block) {
    const std::int64_t len = std::min(block, rows - r0);
    auto part = [&](const at::Tensor& t) { return shape.empty() || len == rows ? t : t.narrow(0, r0, len); };
    const at::Tensor b = kernels::to_float32(part(c.family.tensor(0, spec.name))).to(c.job.device);
    std::vector<at::Tensor> tau;
    for (std::size_t m = 1; m < c.family.num_models(); ++m)
      tau.push_back(kernels::to_float32(part(c.family.tensor(m, spec.name))).to(c.job.device).sub_(b));
    const at::Tensor merged = merge_tensor(c.request, c.stats, spec.name, b, tau, r0 * row_elems, c.job.dare_mask);
    if (!merged.isfinite().all().item<bool>()) fail_non_finite(c, spec.name, "the merged tensor has NaN or Inf values");
    sq += (merged - b).pow(2).sum(at::kDouble).item<double>();  // double accumulation, no double copy
    part(out).copy_(merged.to(at::kCPU));
    if (rows == 0) break;
  }
  return sq;
}

// The base's decoder layers (config.json's num_hidden_layers), which mergekit's gradients span;
// slices must end at the last of them.
std::int64_t layer_count(const StreamingJob& job, const io::HfModel& base) {
  const auto cfg = nlohmann::json::parse(base.config()->text);
  const std::int64_t n = cfg.contains("num_hidden_layers") ? cfg["num_hidden_layers"].get<std::int64_t>() : 0;
  if (job.slices_end_layer > 0 && job.slices_end_layer != n)
    fail(job.source_file, "slices", "end at layer " + std::to_string(job.slices_end_layer) + ", the base has " +
                                        std::to_string(n) + " layers: slices must cover every layer");
  return n;
}

// config.json from the base (torch_dtype following the output dtype), the base's other files,
// and mergesweep_merge.json recording how the merge was made.
// The merged vocabulary's tokenizer (the base's, a model's, or the union written out) and
// config.json's vocab_size; a head untied by a checkpoint's own lm_head says so in the config.
void write_vocabulary(io::HfModelWriter& writer, const io::FamilyReport& family, const io::HfModel& base,
                      nlohmann::ordered_json& cfg) {
  if (family.unties_head) cfg["tie_word_embeddings"] = false;
  if (!family.vocab) {
    writer.copy_passthrough_files(base.path());
    return;
  }
  const io::VocabPlan& v = *family.vocab;
  cfg["vocab_size"] = v.rows;
  writer.copy_passthrough_files(v.tokenizer_dir);
  bool appended = false;
  for (const bool a : v.appended) appended = appended || a;
  if (appended)
    writer.add_text_file("tokenizer.json", io::union_tokenizer_json(v, io::read_text_file(v.tokenizer_dir + "/tokenizer.json")));
}

void write_metadata(io::HfModelWriter& writer, const StreamingJob& job, const io::FamilyReport& family,
                    const io::HfModel& base, std::optional<io::DType> forced, const std::string& describe,
                    double l2_from_base) {
  const MergeRequest& r = job.request;
  nlohmann::ordered_json cfg = nlohmann::ordered_json::parse(base.config()->text);
  if (forced) cfg["torch_dtype"] = torch_dtype_name(*forced);
  write_vocabulary(writer, family, base, cfg);
  writer.set_config_text(cfg.dump(2) + "\n");
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
  if (!job.stack.empty()) return merge_layer_stack(job, progress);
  const MergeRequest& r = job.request;
  validate_request(r, job.source_file);
  if (job.member_paths.size() != r.members.size()) fail(job.source_file, "models", "internal: one path per member");
  const io::HfModel base = io::HfModel::open(job.base_path);
  if (!base.is_folder()) fail(job.base_path, "", "the base must be a model folder with config.json");
  std::vector<io::HfModel> members;
  for (const auto& p : job.member_paths) members.push_back(io::HfModel::open(p));
  std::vector<const io::HfModel*> ptrs;
  for (const auto& m : members) ptrs.push_back(&m);
  std::vector<std::string> fields;
  for (std::size_t i = 0; i < members.size(); ++i) fields.push_back("models[" + std::to_string(i) + "].model");
  // The one compatibility check: mixed float dtypes widened, tied heads, vocabularies aligned.
  const io::FamilyReport family = io::check_family(base, ptrs, fields, job.vocab);
  const io::FamilyTensors inputs(family, base, ptrs);

  FileSource src(inputs, family.tensor_names);
  LocalReducer reducer;
  const GlobalStats stats = compute_global_stats(r, src, reducer);

  std::optional<io::DType> forced;
  if (!job.out_dtype.empty()) forced = parse_output_dtype(job.out_dtype, job.source_file);
  std::vector<io::TensorSpec> specs;
  for (std::size_t t = 0; t < family.tensor_names.size(); ++t) {
    const std::string& name = family.tensor_names[t];
    specs.push_back({name, forced ? *forced : base.require(inputs.source_name(0, name)).dtype, family.shapes[t]});
  }
  const std::string describe = r.describe();
  io::HfModelWriter writer(job.out_dir, specs, job.max_shard_bytes,
                           {{"format", "pt"}, {"mergesweep_merge", describe}});

  const std::int64_t layers = layer_count(job, base);
  StreamingReport rep;
  double l2_sq = 0;
  for (const auto& spec : specs) {
    const MergeRequest own = job.settings ? per_tensor_request(r, *job.settings, spec.name, layers, job.source_file) : r;
    const TensorMergeContext ctx{job, own, inputs, stats, describe};
    at::Tensor out = at::empty(spec.shape, at::TensorOptions().dtype(*io::to_scalar_type(spec.dtype)));
    // Fused kernels read host memory; other devices, and methods without one, take the generic path.
    const std::optional<double> fused = merge_fused(ctx, spec, out);
    l2_sq += fused ? *fused : merge_in_blocks(ctx, spec, out);
    for (std::size_t m = 0; m < inputs.num_models(); ++m) {
      const io::HfModel& model = m == 0 ? base : members[m - 1];
      rep.bytes_read += model.require(inputs.source_name(m, spec.name)).nbytes();
    }
    writer.write(spec.name, out);
    rep.bytes_written += spec.nbytes();
    ++rep.tensors;
    src.release(spec.name);
    if (progress) progress(rep.tensors, specs.size());
  }
  write_metadata(writer, job, family, base, forced, describe, std::sqrt(l2_sq));
  writer.commit();
  rep.l2_from_base = std::sqrt(l2_sq);
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace ms::merge
