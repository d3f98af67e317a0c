// A layer stack: mergekit's passthrough over slices. The output's decoder layers are the slices'
// layers in order, each tensor through the method (its scale) with the settings of its slice; the
// tensors before the layers (the embedding) come from the first slice's model, those after (final
// norm, lm_head) from the last's, as mergekit plans them. config.json is the first model's with
// the new layer count.
#include <ATen/ATen.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "kernels.hpp"
#include "mergekit_settings.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/core/version.hpp"
#include "mergesweep/io/aten_dtype.hpp"
#include "mergesweep/io/family_check.hpp"
#include "mergesweep/io/hf_model.hpp"
#include "mergesweep/merge/merge_streaming.hpp"
#include "mergesweep/model/arch_table.hpp"

namespace ms::merge {
namespace {

struct StackTensor {
  std::string name;    // in the output
  std::size_t slice;   // whose model and settings
  std::string source;  // in that model
};

std::int64_t config_int(const io::HfModel& m, const char* key) {
  const auto cfg = nlohmann::json::parse(m.config()->text);
  return cfg.contains(key) && cfg[key].is_number_integer() ? cfg[key].get<std::int64_t>() : -1;
}

constexpr const char* kHead = "lm_head.weight";

// Whether the merged model's head is the last slice's model's: the output keeps the first model's
// config, so where the first model ties its head the head is the first model's embedding whatever
// the last model stores (mergekit's output reads the same way; tests/fixtures/mergekit_methods).
bool head_from_last(const StreamingJob& job, const std::vector<io::HfModel>& models) {
  return job.stack.front().member != job.stack.back().member && models[job.stack.front().member].find(kHead) != nullptr;
}

// The first slice's model gives the embedding and the last's the head: one vocabulary for both,
// or the merged model would read its logits against other tokens than its inputs. Rows and tokens
// are compared where every family's are (io::plan_vocabulary, refusing by name).
void check_stack_vocabulary(const StreamingJob& job, const std::vector<io::HfModel>& models) {
  if (!head_from_last(job, models)) return;
  const io::HfModel& first = models[job.stack.front().member];
  const io::HfModel& last = models[job.stack.back().member];
  const std::string last_field = "slices[" + std::to_string(job.stack.size() - 1) + "]";
  const std::int64_t embed_rows = io::check_model(first).vocab_rows;
  const io::TensorEntry* head = last.find(io::source_of(last, kHead));
  const std::int64_t head_rows = head && !head->shape.empty() ? head->shape[0] : -1;
  if (embed_rows != head_rows)
    fail(last.path(), last_field, "its head has " + std::to_string(head_rows) + " rows where " + first.path() +
                                      "'s embedding has " + std::to_string(embed_rows) +
                                      ": a layer stack takes the embedding from the first slice's model and the head "
                                      "from the last's, so both must have one vocabulary");
  io::plan_vocabulary(io::VocabChoice{}, {&first, &last}, {embed_rows, head_rows}, {"slices[0]", last_field});
}

// Every slice's layers exist in its model, every model has the first model's widths and only
// dtypes the kernels read (io::check_model), and the embedding and head share one vocabulary.
void check_stack(const StreamingJob& job, const std::vector<io::HfModel>& models) {
  const io::HfModel& first = models[job.stack.front().member];
  for (const auto& m : models) io::check_model(m);
  check_stack_vocabulary(job, models);
  for (std::size_t i = 0; i < job.stack.size(); ++i) {
    const auto& sl = job.stack[i];
    const io::HfModel& m = models[sl.member];
    const std::string where = "slices[" + std::to_string(i) + "]";
    if (!m.config()) fail(m.path(), "config.json", "missing: a layer stack needs each model's config");
    if (sl.end > config_int(m, "num_hidden_layers"))
      fail(job.source_file, where + ".layer_range", "ends at layer " + std::to_string(sl.end) + ", " + m.path() +
                                                        " has " + std::to_string(config_int(m, "num_hidden_layers")));
    for (const char* key : {"hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads"})
      if (config_int(m, key) != config_int(first, key))
        fail(m.path(), std::string("config.json: ") + key, "differs from " + first.path() + "'s: layers of other widths do not stack");
  }
}

std::vector<StackTensor> plan_stack(const StreamingJob& job, const std::vector<io::HfModel>& models) {
  std::vector<StackTensor> out;
  const std::size_t last = job.stack.size() - 1;
  for (const auto& n : models[job.stack.front().member].tensor_names())
    if (layer_of(n) < 0 && model::tensor_kind(n) == model::TensorKind::Embed) out.push_back({n, 0, n});
  std::int64_t next = 0;
  for (std::size_t i = 0; i < job.stack.size(); ++i) {
    const auto& sl = job.stack[i];
    const std::vector<std::string> names = models[sl.member].tensor_names();
    for (std::int64_t l = sl.first; l < sl.end; ++l, ++next) {
      const std::string from = ".layers." + std::to_string(l) + ".", to = ".layers." + std::to_string(next) + ".";
      for (const auto& n : names) {
        if (layer_of(n) != l) continue;
        std::string renamed = n;
        renamed.replace(n.find(from), from.size(), to);
        out.push_back({renamed, i, n});
      }
    }
  }
  const io::HfModel& tail = models[job.stack.back().member];
  for (const auto& n : tail.tensor_names())
    if (layer_of(n) < 0 && model::tensor_kind(n) != model::TensorKind::Embed) out.push_back({n, last, n});
  // An untied output over a tied last model: its head is that model's embedding, written out (left
  // out, transformers would start the untied head from random values).
  if (head_from_last(job, models) && tail.find(kHead) == nullptr) out.push_back({kHead, last, io::source_of(tail, kHead)});
  return out;
}

void write_stack_metadata(io::HfModelWriter& w, const StreamingJob& job, const io::HfModel& first, std::int64_t layers,
                          std::optional<io::DType> forced) {
  nlohmann::ordered_json cfg = nlohmann::ordered_json::parse(first.config()->text);
  cfg["num_hidden_layers"] = layers;
  if (forced) cfg["torch_dtype"] = *forced == io::DType::BF16 ? "bfloat16" : *forced == io::DType::F16 ? "float16" : "float32";
  w.set_config_text(cfg.dump(2) + "\n");
  w.copy_passthrough_files(first.path());
  nlohmann::ordered_json record;
  record["mergesweep_version"] = kVersion;
  record["git_revision"] = kGitRevision;
  record["method"] = job.request.method->name;
  record["source"] = job.source_file;
  nlohmann::ordered_json slices = nlohmann::ordered_json::array();
  for (const auto& sl : job.stack)
    slices.push_back({{"model", job.member_paths[sl.member]}, {"layer_range", {sl.first, sl.end}}});
  record["slices"] = slices;
  w.add_text_file("mergesweep_merge.json", record.dump(2) + "\n");
}

}  // namespace

StreamingReport merge_layer_stack(const StreamingJob& job, const std::function<void(std::size_t, std::size_t)>& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<io::HfModel> models;
  for (const auto& p : job.member_paths) models.push_back(io::HfModel::open(p));
  check_stack(job, models);
  const std::vector<StackTensor> plan = plan_stack(job, models);
  std::int64_t layers = 0;
  for (const auto& sl : job.stack) layers += sl.end - sl.first;
  std::optional<io::DType> forced;
  if (!job.out_dtype.empty()) forced = parse_output_dtype(job.out_dtype, job.source_file);
  std::vector<io::TensorSpec> specs;
  for (const auto& t : plan) {
    const io::TensorEntry& e = models[job.stack[t.slice].member].require(t.source);
    specs.push_back({t.name, forced ? *forced : e.dtype, e.shape});
  }
  io::HfModelWriter writer(job.out_dir, specs, job.max_shard_bytes, {{"format", "pt"}, {"mergesweep_merge", job.request.describe()}});
  StreamingReport rep;
  rep.has_l2 = false;
  const GlobalStats none;
  for (std::size_t i = 0; i < plan.size(); ++i) {
    const StackTensor& t = plan[i];
    const auto& sl = job.stack[t.slice];
    MergeRequest own = job.request;
    own.members = {Member{job.member_paths[sl.member], static_cast<int>(sl.member), 1.0, 1.0}};
    own = per_tensor_request(own, *job.settings, t.name, layers, job.source_file);
    const at::Tensor src = models[sl.member].tensor(t.source);
    const at::Tensor merged = merge_tensor(own, none, t.name, kernels::to_float32(src), {}, 0, nullptr);
    if (!merged.isfinite().all().item<bool>()) fail(job.out_dir, "'" + t.name + "'", "has NaN or Inf values");
    writer.write(t.name, merged.to(*io::to_scalar_type(specs[i].dtype)));
    rep.bytes_read += src.nbytes();
    rep.bytes_written += specs[i].nbytes();
    ++rep.tensors;
    if (progress) progress(rep.tensors, plan.size());
  }
  write_stack_metadata(writer, job, models[job.stack.front().member], layers, forced);
  writer.commit();
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace ms::merge
