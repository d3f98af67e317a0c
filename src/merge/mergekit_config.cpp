#include "mergesweep/merge/mergekit_config.hpp"

#include <yaml-cpp/yaml.h>

#include <map>
#include <set>

#include "mergesweep/core/error.hpp"
#include "mergesweep/io/fs_util.hpp"

namespace ms::merge {
namespace {

std::string at_line(const YAML::Node& n) {
  return n.Mark().line >= 0 ? " (line " + std::to_string(n.Mark().line + 1) + ")" : "";
}

void check_keys(const YAML::Node& map, const std::set<std::string>& allowed, const std::string& file,
                const std::string& where) {
  for (const auto& kv : map) {
    const std::string key = kv.first.as<std::string>();
    if (allowed.count(key)) continue;
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
    fail(file, where + key, "unsupported key" + at_line(kv.first) + "; supported here: " + list);
  }
}

// A parameter value must be a plain scalar: mergekit's gradients and per-tensor filters are refused.
std::string scalar_text(const YAML::Node& v, const std::string& file, const std::string& field) {
  if (!v.IsScalar()) {
    fail(file, field, "must be a single value" + at_line(v) +
                          "; mergekit gradients (lists) and per-tensor filters are not supported");
  }
  return v.as<std::string>();
}

double number(const std::string& text, const std::string& file, const std::string& field) {
  try {
    std::size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  fail(file, field, "'" + text + "' is not a number");
}

bool p_has(const YAML::Node& entry, const char* key) {
  return entry["parameters"] && entry["parameters"].IsMap() && entry["parameters"][key];
}

}  // namespace

StreamingJob parse_mergekit_config(const std::string& text, const std::string& file) {
  YAML::Node doc;
  try {
    doc = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail(file, "", "invalid YAML at line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  if (!doc.IsMap()) fail(file, "", "a merge configuration must be a YAML mapping with merge_method and models");
  check_keys(doc,
             {"merge_method", "base_model", "models", "parameters", "dtype", "out_dtype", "tokenizer_source",
              "int8_mask"},
             file, "");
  if (!doc["merge_method"]) fail(file, "merge_method", "missing");
  StreamingJob job;
  job.source_file = file;
  const MethodInfo& method = require_method(scalar_text(doc["merge_method"], file, "merge_method"), file);
  job.request.method = &method;

  if (doc["tokenizer_source"]) {
    const std::string ts = scalar_text(doc["tokenizer_source"], file, "tokenizer_source");
    if (ts != "base") fail(file, "tokenizer_source", "only 'base' is supported, got '" + ts + "'");
  }
  if (doc["out_dtype"]) job.out_dtype = scalar_text(doc["out_dtype"], file, "out_dtype");
  else if (doc["dtype"]) job.out_dtype = scalar_text(doc["dtype"], file, "dtype");
  if (!job.out_dtype.empty()) parse_output_dtype(job.out_dtype, file);

  // Top-level parameters: method parameters, plus weight/density defaults for every model.
  std::map<std::string, std::string> method_params;
  double default_weight = 1.0, default_density = 1.0;
  if (const YAML::Node params = doc["parameters"]) {
    if (!params.IsMap()) fail(file, "parameters", "must be a mapping" + at_line(params));
    for (const auto& kv : params) {
      const std::string key = kv.first.as<std::string>();
      const std::string value = scalar_text(kv.second, file, "parameters." + key);
      if (key == "weight") default_weight = number(value, file, "parameters.weight");
      else if (key == "density") default_density = number(value, file, "parameters.density");
      else method_params[key] = value;
    }
  }
  if (doc["parameters"] && doc["parameters"]["weight"] && !method.uses_weight) {
    fail(file, "parameters.weight", method.name + " takes no per-model weight");
  }
  if (doc["parameters"] && doc["parameters"]["density"] && !method.uses_density) {
    fail(file, "parameters.density", method.name + " takes no per-model density");
  }
  job.request.params = validate_params(method.params, method_params, file, "method '" + method.name + "'");

  std::string base;
  if (doc["base_model"]) base = scalar_text(doc["base_model"], file, "base_model");
  if (!doc["models"] || !doc["models"].IsSequence() || doc["models"].size() == 0) {
    fail(file, "models", "missing or empty; expected a list of {model: PATH, parameters: {...}}");
  }
  std::vector<std::string> paths;
  int index = 0;
  for (const auto& entry : doc["models"]) {
    const std::string where = "models[" + std::to_string(index) + "]";
    if (!entry.IsMap() || !entry["model"]) fail(file, where, "must be a mapping with a 'model' path" + at_line(entry));
    check_keys(entry, {"model", "parameters"}, file, where + ".");
    const std::string path = scalar_text(entry["model"], file, where + ".model");
    Member m;
    m.name = path;
    m.index = index++;
    m.weight = default_weight;
    m.density = default_density;
    if (const YAML::Node p = entry["parameters"]) {
      if (!p.IsMap()) fail(file, where + ".parameters", "must be a mapping" + at_line(p));
      check_keys(p, {"weight", "density"}, file, where + ".parameters.");
      if (p["weight"]) m.weight = number(scalar_text(p["weight"], file, where + ".parameters.weight"), file, where + ".parameters.weight");
      if (p["density"]) m.density = number(scalar_text(p["density"], file, where + ".parameters.density"), file, where + ".parameters.density");
    }
    if (!method.uses_weight && p_has(entry, "weight")) {
      fail(file, where + ".parameters.weight", method.name + " takes no per-model weight");
    }
    if (!method.uses_density && p_has(entry, "density")) {
      fail(file, where + ".parameters.density", method.name + " takes no per-model density");
    }
    if (!base.empty() && path == base) continue;  // the base listed among the models is the anchor, not a member
    job.request.members.push_back(m);
    paths.push_back(path);
  }
  if (base.empty()) {
    if (method.needs_base) fail(file, "base_model", "missing; " + method.name + " needs a base model");
    base = paths.front();  // linear without a base: the first model anchors the task vectors
  }
  job.base_path = base;
  job.member_paths = paths;
  validate_request(job.request, file);
  return job;
}

StreamingJob read_mergekit_config(const std::string& path) {
  if (!io::path_exists(path)) fail(path, "", "no such file");
  return parse_mergekit_config(io::read_text_file(path), path);
}

}  // namespace ms::merge
