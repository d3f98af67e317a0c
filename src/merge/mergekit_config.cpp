#include "mergesweep/merge/mergekit_config.hpp"

#include <map>

#include "mergesweep/core/error.hpp"
#include "mergesweep/io/fs_util.hpp"
#include "mergesweep/io/lora_adapter.hpp"
#include "mergesweep/io/yaml_fields.hpp"

namespace ms::merge {
namespace {

// A parameter value must be a plain scalar: mergekit's gradients and per-tensor filters are refused.
constexpr const char* kNoGradients = "mergekit gradients (lists) and per-tensor filters are not supported";

// Per-model defaults given at the top level, as mergekit takes them.
struct Defaults {
  double weight = 1.0, density = 1.0;
};

void parse_header(const io::YamlFields& y, const YAML::Node& doc, StreamingJob& job) {
  if (doc["slices"])
    y.fail(doc["slices"], "slices",
           "mergekit's slices (layer_range, passthrough layer stacks) are not supported yet; list whole models under "
           "'models' instead");
  if (doc["chat_template"])
    y.fail(doc["chat_template"], "chat_template",
           "mergekit's chat_template is not supported yet; the output keeps the tokenizer files of the base (or of "
           "tokenizer_source)");
  y.check_keys(doc, "",
               {"merge_method", "base_model", "models", "parameters", "dtype", "out_dtype", "tokenizer_source",
                "tokenizer", "int8_mask"});
  if (doc["tokenizer"])  // mergekit's tokens: overrides and pad_to_multiple_of
    y.fail(doc["tokenizer"], "tokenizer",
           "mergekit's tokenizer block (tokens, pad_to_multiple_of) is not supported; tokenizer_source: base, union "
           "or a model path is");
  if (!doc["merge_method"]) y.fail(doc, "merge_method", "missing (the name of a merge method)");
  job.source_file = y.file();
  job.request.method = &require_method(y.scalar(doc["merge_method"], "merge_method", kNoGradients), y.file());

  if (doc["out_dtype"]) job.out_dtype = y.scalar(doc["out_dtype"], "out_dtype");
  else if (doc["dtype"]) job.out_dtype = y.scalar(doc["dtype"], "dtype");
  if (!job.out_dtype.empty()) parse_output_dtype(job.out_dtype, y.file());
}

// Top-level parameters: method parameters, plus weight/density defaults for every model.
Defaults parse_top_parameters(const io::YamlFields& y, const YAML::Node& doc, StreamingJob& job) {
  const Method& method = *job.request.method;
  std::map<std::string, std::string> method_params;
  Defaults d;
  if (const YAML::Node params = doc["parameters"]) {
    if (!params.IsMap()) y.fail(params, "parameters", "a mapping", io::YamlFields::describe(params));
    for (const auto& kv : params) {
      const std::string key = kv.first.as<std::string>();
      const std::string field = "parameters." + key;
      if (key == "weight" && !method.uses_weight) y.fail(kv.first, field, method.name + " takes no per-model weight");
      if (key == "density" && !method.uses_density)
        y.fail(kv.first, field, method.name + " takes no per-model density");
      const std::string value = y.scalar(kv.second, field, kNoGradients);
      if (key == "int8_mask") {
        // mergekit computes its sign masks in int8 instead of the delta's dtype to save memory;
        // signs are -1, 0 or 1 either way, so the masks, and the merge, are the same: accepted, no effect.
        if (!method.accepts_int8_mask) y.fail(kv.first, field, method.name + " takes no int8_mask (mergekit's task-vector methods do)");
        if (value != "true" && value != "false") y.fail(kv.second, field, "true or false", "'" + value + "'");
        continue;
      }
      if (key == "weight") d.weight = y.number(kv.second, field);
      else if (key == "density") d.density = y.number(kv.second, field);
      else method_params[key] = value;
    }
  }
  job.request.params = validate_params(method.params, method_params, y.file(), "method '" + method.name + "'");
  return d;
}

// One entry of `models`: its path and per-model weight/density.
Member parse_model(const io::YamlFields& y, const YAML::Node& entry, const std::string& where,
                   const Method& method, const Defaults& d) {
  if (!entry.IsMap() || !entry["model"])
    y.fail(entry, where, "a mapping with a 'model' path", io::YamlFields::describe(entry));
  y.check_keys(entry, where + ".", {"model", "parameters"});
  Member m;
  m.name = y.scalar(entry["model"], where + ".model");
  m.weight = d.weight;
  m.density = d.density;
  if (const YAML::Node p = entry["parameters"]) {
    y.check_keys(p, where + ".parameters.", {"weight", "density"});
    if (p["weight"] && !method.uses_weight)
      y.fail(p["weight"], where + ".parameters.weight", method.name + " takes no per-model weight");
    if (p["density"] && !method.uses_density)
      y.fail(p["density"], where + ".parameters.density", method.name + " takes no per-model density");
    if (p["weight"]) m.weight = y.number(p["weight"], where + ".parameters.weight");
    if (p["density"]) m.density = y.number(p["density"], where + ".parameters.density");
  }
  return m;
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

void parse_models(const io::YamlFields& y, const YAML::Node& doc, const Defaults& d, StreamingJob& job) {
  const Method& method = *job.request.method;
  std::string base;
  if (doc["base_model"]) base = y.scalar(doc["base_model"], "base_model");
  const YAML::Node models = doc["models"];
  if (!models || !models.IsSequence() || models.size() == 0)
    y.fail(models ? models : doc, "models", "a non-empty list of {model: PATH, parameters: {...}}",
           io::YamlFields::describe(models));
  for (std::size_t i = 0; i < models.size(); ++i) {
    Member m = parse_model(y, models[i], "models[" + std::to_string(i) + "]", method, d);
    m.index = static_cast<int>(i);
    // The base listed among the models: for a method built on task vectors it is the anchor, not
    // a member (mergekit skips it); linear averages every listed model, the base with its weight.
    if (!base.empty() && m.name == base && method.needs_base) continue;
    job.member_paths.push_back(m.name);
    job.member_fields.push_back("models[" + std::to_string(i) + "].model: " +
                                io::YamlFields::line_prefix(models[i]["model"]));
    job.request.members.push_back(m);
  }
  job.base_field = doc["base_model"] ? "base_model: " + io::YamlFields::line_prefix(doc["base_model"]) : "models[0].model";
  if (base.empty()) {
    if (method.needs_base) y.fail(doc, "base_model", "missing; " + method.name + " needs a base model");
    base = job.member_paths.front();  // linear without a base: the first model anchors the task vectors
  }
  job.base_path = base;
  job.vocab.base_in_merge = doc["base_model"].IsDefined();
  if (doc["tokenizer_source"]) parse_tokenizer_source(y, doc["tokenizer_source"], base, job);
}

}  // namespace

StreamingJob parse_mergekit_config(const std::string& text, const std::string& file) {
  const io::YamlFields y(file);
  const YAML::Node doc = y.load_mapping(text, "a merge configuration (a YAML mapping with merge_method and models)");
  StreamingJob job;
  parse_header(y, doc, job);
  const Defaults defaults = parse_top_parameters(y, doc, job);
  parse_models(y, doc, defaults, job);
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
