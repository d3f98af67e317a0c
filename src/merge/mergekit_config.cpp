#include "mergesweep/merge/mergekit_config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <set>

#include "mergekit_settings.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/io/fs_util.hpp"
#include "mergesweep/io/lora_adapter.hpp"
#include "mergesweep/io/yaml_fields.hpp"

namespace ms::merge {
namespace {

constexpr const char* kScalar = "a single value";

void parse_header(const io::YamlFields& y, const YAML::Node& doc, StreamingJob& job) {
  if (doc["chat_template"])
    y.fail(doc["chat_template"], "chat_template",
           "mergekit's chat_template is not supported yet; the output keeps the tokenizer files of the base (or of "
           "tokenizer_source)");
  if (doc["modules"])
    y.fail(doc["modules"], "modules", "mergekit's modules (several module architectures) are not supported; use "
                                      "models or slices");
  y.check_keys(doc, "",
               {"merge_method", "base_model", "models", "slices", "parameters", "dtype", "out_dtype",
                "tokenizer_source", "tokenizer", "int8_mask"});
  if (doc["tokenizer"])  // mergekit's tokens: overrides and pad_to_multiple_of
    y.fail(doc["tokenizer"], "tokenizer",
           "mergekit's tokenizer block (tokens, pad_to_multiple_of) is not supported; tokenizer_source: base, union "
           "or a model path is");
  if (!doc["merge_method"]) y.fail(doc, "merge_method", "missing (the name of a merge method)");
  if (doc["models"] && doc["slices"]) y.fail(doc["slices"], "slices", "given with models; give one of them, as mergekit");
  job.source_file = y.file();
  job.request.method = &require_method(y.scalar(doc["merge_method"], "merge_method", kScalar), y.file());
  if (doc["out_dtype"]) job.out_dtype = y.scalar(doc["out_dtype"], "out_dtype");
  else if (doc["dtype"]) job.out_dtype = y.scalar(doc["dtype"], "dtype");
  if (!job.out_dtype.empty()) parse_output_dtype(job.out_dtype, y.file());
}

// Each value a setting can take must be one the parameter accepts (a gradient's points bound
// the values between them).
void check_setting_values(const io::YamlFields& y, const YAML::Node& at, const Method& method, const std::string& key,
                          const Setting& s, const std::string& field) {
  for (const auto& c : s)
    for (const auto& v : c.values) {
      if (key == "weight" || key == "density") {
        if (!as_number(v)) y.fail(at, field, "a number", "'" + v + "'");
      } else {
        const std::string line = io::YamlFields::line_prefix(at);
        validate_params(method.params, {{key, v}}, y.file(),
                        "method '" + method.name + "' (" + field + (line.empty() ? "" : ", " + line.substr(0, line.size() - 2)) + ")");
      }
    }
}

// One `parameters` mapping (the top level's, a slice's or a model's) as settings.
SettingMap parse_settings(const io::YamlFields& y, const YAML::Node& params, const std::string& where,
                          const Method& method) {
  SettingMap out;
  if (!params) return out;
  if (!params.IsMap()) y.fail(params, where, "a mapping", io::YamlFields::describe(params));
  std::set<std::string> known{"weight", "density"};
  for (const auto& d : method.params) known.insert(d.name);
  for (const auto& kv : params) {
    const std::string key = kv.first.as<std::string>();
    const std::string field = where + "." + key;
    if (key == "int8_mask") {
      // mergekit computes its sign masks in int8 instead of the delta's dtype to save memory;
      // signs are -1, 0 or 1 either way, so the masks, and the merge, are the same: accepted, no effect.
      if (!method.accepts_int8_mask) y.fail(kv.first, field, method.name + " takes no int8_mask (mergekit's task-vector methods do)");
      const std::string v = y.scalar(kv.second, field);
      if (v != "true" && v != "false") y.fail(kv.second, field, "true or false", "'" + v + "'");
      continue;
    }
    const auto& ignored = method.mergekit_no_effect;
    if (std::find(ignored.begin(), ignored.end(), key) != ignored.end()) {
      parse_setting(y, kv.second, field);  // well-formed, as mergekit requires; no effect (MethodInfo)
      continue;
    }
    if (key == "weight" && !method.uses_weight) y.fail(kv.first, field, method.name + " takes no per-model weight");
    if (key == "density" && !method.uses_density) y.fail(kv.first, field, method.name + " takes no per-model density");
    if (!known.count(key)) {
      std::string names;
      for (const auto& k : known) names += (names.empty() ? "" : ", ") + k;
      y.fail(kv.first, field, "unknown parameter for method '" + method.name + "'; known: " + names);
    }
    Setting s = parse_setting(y, kv.second, field);
    check_setting_values(y, kv.second, method, key, s, field);
    out[key] = std::move(s);
  }
  return out;
}

// mergekit reads some of a method's parameters per model (DELLA's epsilon, breadcrumbs' gamma);
// mergesweep has one value per slice: every model of the slice must give the same setting.
void hoist_member_settings(const io::YamlFields& y, const YAML::Node& at, const Method& method, SliceSettings& slice,
                           const std::string& where) {
  for (const auto& def : method.params) {
    const Setting* first = nullptr;
    for (auto& m : slice.member) {
      const auto it = m.find(def.name);
      const bool same = first && it != m.end() && *first == it->second;
      if (!first && it != m.end()) first = &it->second;
      else if (first && !same)
        y.fail(at, where + "parameters." + def.name,
               "mergesweep takes one '" + def.name + "' for every model of a slice; the models give different "
               "values (or only some give it)");
    }
    if (!first) continue;
    slice.own[def.name] = *first;
    for (auto& m : slice.member) m.erase(def.name);
  }
}

void add_member(StreamingJob& job, const std::string& path, int index, const std::string& field) {
  Member m;
  m.name = path;
  m.index = index;
  job.member_paths.push_back(path);
  job.member_fields.push_back(field);
  job.request.members.push_back(m);
}

// `models`: one slice over every layer.
void parse_models(const io::YamlFields& y, const YAML::Node& doc, const std::string& base, StreamingJob& job,
                  TensorSettings& s) {
  const Method& method = *job.request.method;
  const YAML::Node models = doc["models"];
  if (!models || !models.IsSequence() || models.size() == 0)
    y.fail(models ? models : doc, "models", "a non-empty list of {model: PATH, parameters: {...}}",
           io::YamlFields::describe(models));
  SliceSettings slice;
  for (std::size_t i = 0; i < models.size(); ++i) {
    const std::string where = "models[" + std::to_string(i) + "]";
    const YAML::Node entry = models[i];
    if (!entry.IsMap() || !entry["model"])
      y.fail(entry, where, "a mapping with a 'model' path", io::YamlFields::describe(entry));
    y.check_keys(entry, where + ".", {"model", "parameters"});
    const std::string path = y.scalar(entry["model"], where + ".model");
    // The base listed among the models: for a method built on task vectors it is the anchor, not
    // a member (mergekit skips it); linear averages every listed model, the base with its weight.
    if (!base.empty() && path == base && method.needs_base) continue;
    add_member(job, path, static_cast<int>(i), where + ".model: " + io::YamlFields::line_prefix(entry["model"]));
    slice.member.push_back(parse_settings(y, entry["parameters"], where + ".parameters", method));
  }
  if (slice.member.empty()) y.fail(models, "models", "lists only the base model; a merge needs other models");
  hoist_member_settings(y, models, method, slice, "models[].");
  s.slices.push_back(std::move(slice));
}

struct SliceSource {
  std::string model;
  std::int64_t first = 0, end = 0;
  YAML::Node params, at;
};

std::vector<SliceSource> parse_sources(const io::YamlFields& y, const YAML::Node& slice, const std::string& where) {
  y.check_keys(slice, where + ".", {"sources", "parameters", "base_model", "residual_weight"});
  if (slice["base_model"] || slice["residual_weight"]) {
    const char* key = slice["base_model"] ? "base_model" : "residual_weight";
    y.fail(slice[key], where + "." + key, std::string("a slice's own ") + key + " is not supported; give base_model at the top level");
  }
  const YAML::Node sources = slice["sources"];
  if (!sources || !sources.IsSequence() || sources.size() == 0)
    y.fail(sources ? sources : slice, where + ".sources", "a non-empty list of {model, layer_range: [FIRST, END]}",
           io::YamlFields::describe(sources));
  std::vector<SliceSource> out;
  for (std::size_t k = 0; k < sources.size(); ++k) {
    const std::string f = where + ".sources[" + std::to_string(k) + "]";
    const YAML::Node e = sources[k];
    if (!e.IsMap() || !e["model"] || !e["layer_range"])
      y.fail(e, f, "a mapping with model and layer_range", io::YamlFields::describe(e));
    y.check_keys(e, f + ".", {"model", "layer_range", "parameters"});
    const std::vector<int> range = y.int_list(e["layer_range"], f + ".layer_range", 0, 1 << 20);
    if (range.size() != 2 || range[0] >= range[1])
      y.fail(e["layer_range"], f + ".layer_range", "[FIRST, END] with FIRST < END", io::YamlFields::describe(e["layer_range"]));
    out.push_back({y.scalar(e["model"], f + ".model"), range[0], range[1], e["parameters"], e});
  }
  return out;
}

// A layer stack (the method stacks_layers: passthrough): one source per slice, the output's
// layers the slices' in order; the first slice's model gives the layers before, the last's those after.
void parse_stack(const io::YamlFields& y, const YAML::Node& slices, StreamingJob& job, TensorSettings& s) {
  const Method& method = *job.request.method;
  std::int64_t out_layer = 0;
  for (std::size_t i = 0; i < slices.size(); ++i) {
    const std::string where = "slices[" + std::to_string(i) + "]";
    const std::vector<SliceSource> src = parse_sources(y, slices[i], where);
    if (src.size() != 1)
      y.fail(slices[i]["sources"], where + ".sources", method.name + " takes one source per slice, got " + std::to_string(src.size()));
    std::size_t member = 0;
    while (member < job.member_paths.size() && job.member_paths[member] != src[0].model) ++member;
    if (member == job.member_paths.size())
      add_member(job, src[0].model, static_cast<int>(member),
                 where + ".sources[0].model: " + io::YamlFields::line_prefix(src[0].at["model"]));
    SliceSettings slice;
    slice.first_layer = out_layer;
    slice.layers = src[0].end - src[0].first;
    slice.own = parse_settings(y, slices[i]["parameters"], where + ".parameters", method);
    slice.member.push_back(parse_settings(y, src[0].params, where + ".sources[0].parameters", method));
    hoist_member_settings(y, slices[i], method, slice, where + ".sources[].");
    job.stack.push_back({member, src[0].first, src[0].end});
    out_layer += slice.layers;
    s.slices.push_back(std::move(slice));
  }
  job.request.members.resize(1);  // the first slice's model; each slice's request names its own
}

// `slices` whose every slice takes the same layers from the same models, in order and from layer
// 0 on: a merge of whole models whose settings may differ between slices (mergekit's gradient
// over layer ranges). Layer stacks and reordered layers are passthrough's (docs/methods.md).
void parse_slices(const io::YamlFields& y, const YAML::Node& doc, const std::string& base, StreamingJob& job,
                  TensorSettings& s) {
  const Method& method = *job.request.method;
  const YAML::Node slices = doc["slices"];
  if (!slices.IsSequence() || slices.size() == 0)
    y.fail(slices, "slices", "a non-empty list of {sources: [...]}", io::YamlFields::describe(slices));
  if (method.stacks_layers) return parse_stack(y, slices, job, s);
  std::vector<std::string> models;
  std::int64_t next = 0;
  for (std::size_t i = 0; i < slices.size(); ++i) {
    const std::string where = "slices[" + std::to_string(i) + "]";
    const std::vector<SliceSource> src = parse_sources(y, slices[i], where);
    std::vector<std::string> names;
    for (const auto& e : src) names.push_back(e.model);
    if (i == 0) models = names;
    for (const auto& e : src)
      if (names != models || e.first != next || e.end != src[0].end)
        y.fail(e.at, where + ".sources",
               "takes other layers or models than the slices before it: mergesweep merges slices that take layers "
               "[a, b) from the same models, contiguous from layer 0 (mergekit's gradients over layer ranges); layer "
               "stacks and reordered layers are not supported");
    SliceSettings slice;
    slice.first_layer = next;
    slice.layers = src[0].end - src[0].first;
    slice.own = parse_settings(y, slices[i]["parameters"], where + ".parameters", method);
    for (std::size_t k = 0; k < src.size(); ++k) {
      if (!base.empty() && src[k].model == base && method.needs_base) continue;  // the anchor, as in models
      if (i == 0)
        add_member(job, src[k].model, static_cast<int>(k),
                   where + ".sources[" + std::to_string(k) + "].model: " + io::YamlFields::line_prefix(src[k].at["model"]));
      slice.member.push_back(parse_settings(y, src[k].params, where + ".sources[" + std::to_string(k) + "].parameters", method));
    }
    if (slice.member.empty()) y.fail(slices[i], where + ".sources", "lists only the base model; a merge needs other models");
    hoist_member_settings(y, slices[i], method, slice, where + ".sources[].");
    next = src[0].end;
    s.slices.push_back(std::move(slice));
  }
  job.slices_end_layer = next;
}

// mergekit's tokenizer_source: base, union, or the path of one of the merge's models
// (io/vocabulary.hpp). Unset, vocabularies that differ are refused, as mergekit refuses them.
void parse_tokenizer_source(const io::YamlFields& y, const YAML::Node& n, const std::string& base, StreamingJob& job) {
  const std::string ts = y.scalar(n, "tokenizer_source");
  if (ts == "base") job.vocab.source = io::VocabSource::Base;
  else if (ts == "union") job.vocab.source = io::VocabSource::Union;
  else {
    job.vocab.source = io::VocabSource::Model;
    if (ts == base) return;  // model 0
    for (std::size_t i = 0; i < job.member_paths.size(); ++i)
      if (job.member_paths[i] == ts) {
        job.vocab.model = i + 1;
        return;
      }
    y.fail(n, "tokenizer_source", "base, union or the path of one of the models", "'" + ts + "'");
  }
}

// The inputs and every setting; the job's request holds the values that apply everywhere (each
// tensor's own come from merge::per_tensor_request when some setting depends on the tensor).
void parse_inputs(const io::YamlFields& y, const YAML::Node& doc, StreamingJob& job) {
  const Method& method = *job.request.method;
  std::string base;
  if (doc["base_model"]) base = y.scalar(doc["base_model"], "base_model");
  TensorSettings s;
  s.top = parse_settings(y, doc["parameters"], "parameters", method);
  if (doc["slices"]) parse_slices(y, doc, base, job, s);
  else parse_models(y, doc, base, job, s);
  job.base_field = doc["base_model"] ? "base_model: " + io::YamlFields::line_prefix(doc["base_model"]) : "models[0].model";
  if (base.empty()) {
    if (method.needs_base) y.fail(doc, "base_model", "missing; " + method.name + " needs a base model");
    base = job.member_paths.front();  // no base: the first model anchors the task vectors
    job.request.base_is_first_member = true;
  }
  job.base_path = base;
  job.vocab.base_in_merge = doc["base_model"].IsDefined();
  if (doc["tokenizer_source"]) parse_tokenizer_source(y, doc["tokenizer_source"], base, job);
  job.request = per_tensor_request(job.request, s, "", 1, y.file());
  if (!s.per_tensor() && job.stack.empty()) return;
  if (method.scope_for(job.request.params) == Scope::WholeModel)
    y.fail(doc["parameters"] ? doc["parameters"] : doc, "parameters",
           method.name + " with whole-model statistics takes no per-tensor settings (filters, gradients, slices)");
  job.settings = std::make_shared<const TensorSettings>(std::move(s));
}

}  // namespace

StreamingJob parse_mergekit_config(const std::string& text, const std::string& file) {
  const io::YamlFields y(file);
  const YAML::Node doc = y.load_mapping(text, "a merge configuration (a YAML mapping with merge_method and models)");
  StreamingJob job;
  parse_header(y, doc, job);
  parse_inputs(y, doc, job);
  validate_request(job.request, file);
  return job;
}
StreamingJob read_mergekit_config(const std::string& path) {
  if (!io::path_exists(path)) fail(path, "", "no such file");
  StreamingJob job = parse_mergekit_config(io::read_text_file(path), path);
  const auto field = [](std::string f) {  // "models[0].model: line 4: " -> "models[0].model: line 4"
    while (!f.empty() && (f.back() == ' ' || f.back() == ':')) f.pop_back();
    return f;
  };
  // Each model: a local folder, a hub name from the local cache, a LoRA adapter folded onto the
  // base, or mergekit's model+lora (io/lora_adapter.hpp).
  job.base_path = io::resolve_checkpoint(job.base_path, "", path, field(job.base_field));
  for (std::size_t i = 0; i < job.member_paths.size(); ++i)
    job.member_paths[i] = io::resolve_checkpoint(job.member_paths[i], job.base_path, path, field(job.member_fields[i]));
  return job;
}

}  // namespace ms::merge
