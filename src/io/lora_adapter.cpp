#include "mergesweep/io/lora_adapter.hpp"

#include <ATen/ATen.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>

#include "mergesweep/core/error.hpp"
#include "mergesweep/core/sha256.hpp"
#include "mergesweep/io/fs_util.hpp"
#include "mergesweep/io/hf_model.hpp"
#include "mergesweep/io/hub_cache.hpp"

namespace ms::io {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

constexpr const char* kConfig = "adapter_config.json";
constexpr const char* kWeights = "adapter_model.safetensors";
constexpr const char* kMarker = "mergesweep_folded.json";
constexpr const char* kPeftPrefix = "base_model.model.";
constexpr int kFoldVersion = 1;  // part of the cache key: a changed fold never reuses an old one

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}
bool flag(const ojson& j, const char* key) { return j.contains(key) && j[key].is_boolean() && j[key].get<bool>(); }
std::string shape_text(at::IntArrayRef s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

struct LoraSettings {
  std::string path;  // adapter_config.json
  std::int64_t r = 0;
  double alpha = 0;
  bool rslora = false, fan_in_fan_out = false;
  ojson rank_pattern = ojson::object(), alpha_pattern = ojson::object(), raw;
};

LoraSettings read_settings(const std::string& adapter) {
  LoraSettings s;
  s.path = adapter + "/" + kConfig;
  try {
    s.raw = ojson::parse(read_text_file(s.path));
  } catch (const nlohmann::json::exception& e) {
    fail(s.path, "", std::string("is not valid JSON: ") + e.what());
  }
  const ojson& j = s.raw;
  const std::string type = j.contains("peft_type") && j["peft_type"].is_string() ? j["peft_type"].get<std::string>() : "?";
  if (type != "LORA") fail(s.path, "peft_type", "'" + type + "' is not supported; only LORA adapters are folded");
  if (flag(j, "use_dora")) fail(s.path, "use_dora", "DoRA adapters are not supported (a magnitude vector changes the fold)");
  if (!j.contains("r") || !j["r"].is_number_integer() || j["r"].get<std::int64_t>() <= 0)
    fail(s.path, "r", "must be a positive integer");
  s.r = j["r"].get<std::int64_t>();
  s.alpha = j.contains("lora_alpha") && j["lora_alpha"].is_number() ? j["lora_alpha"].get<double>() : static_cast<double>(s.r);
  s.rslora = flag(j, "use_rslora");
  s.fan_in_fan_out = flag(j, "fan_in_fan_out");
  if (j.contains("rank_pattern") && j["rank_pattern"].is_object()) s.rank_pattern = j["rank_pattern"];
  if (j.contains("alpha_pattern") && j["alpha_pattern"].is_object()) s.alpha_pattern = j["alpha_pattern"];
  return s;
}

// PEFT's get_pattern_key: the first pattern that is the module's name or matches its end after a dot.
const ojson* pattern_for(const ojson& patterns, const std::string& module) {
  for (auto it = patterns.begin(); it != patterns.end(); ++it) {
    if (it.key() == module) return &it.value();
    try {
      if (std::regex_match(module, std::regex("(.*\\.)?(" + it.key() + ")"))) return &it.value();
    } catch (const std::regex_error&) {
    }
  }
  return nullptr;
}

// The adapter's tensors by what they do to the base's tensors.
struct AdapterParts {
  std::map<std::string, std::string> lora_a, lora_b;  // module -> adapter tensor
  std::map<std::string, bool> embedding;              // module -> an embedding's LoRA (B·A transposed)
  std::map<std::string, std::string> replace;         // base tensor -> adapter tensor (modules_to_save, base layers)
};

AdapterParts split_tensors(const SafetensorsFile& f) {
  AdapterParts p;
  const auto strip = [](const std::string& k, const std::string& tail) { return k.substr(0, k.size() - tail.size()); };
  for (const auto& e : f.header().tensors) {
    std::string k = e.name;
    if (k.rfind(kPeftPrefix, 0) == 0) k = k.substr(std::string(kPeftPrefix).size());
    if (ends_with(k, ".lora_A.weight")) p.lora_a[strip(k, ".lora_A.weight")] = e.name;
    else if (ends_with(k, ".lora_B.weight")) p.lora_b[strip(k, ".lora_B.weight")] = e.name;
    else if (ends_with(k, ".lora_embedding_A")) p.lora_a[strip(k, ".lora_embedding_A")] = e.name, p.embedding[strip(k, ".lora_embedding_A")] = true;
    else if (ends_with(k, ".lora_embedding_B")) p.lora_b[strip(k, ".lora_embedding_B")] = e.name;
    else if (ends_with(k, ".base_layer.weight")) p.replace[strip(k, ".base_layer.weight") + ".weight"] = e.name;
    else if (k.find("lora_") != std::string::npos) fail(f.path(), e.name, "is a LoRA tensor of a kind this fold does not know");
    else p.replace[k] = e.name;
  }
  for (const auto& [m, a] : p.lora_a)
    if (!p.lora_b.count(m)) fail(f.path(), a, "has no lora_B partner: a half-written adapter?");
  for (const auto& [m, b] : p.lora_b)
    if (!p.lora_a.count(m)) fail(f.path(), b, "has no lora_A partner: a half-written adapter?");
  return p;
}

// W + s·B·A for one module, as PEFT's merge_and_unload computes it in float32.
at::Tensor fold_module(const LoraSettings& s, const SafetensorsFile& f, const AdapterParts& p, const std::string& module,
                       const at::Tensor& w) {
  const at::Tensor a = f.tensor(p.lora_a.at(module)).to(at::kFloat);
  const at::Tensor b = f.tensor(p.lora_b.at(module)).to(at::kFloat);
  const ojson* rp = pattern_for(s.rank_pattern, module);
  const ojson* ap = pattern_for(s.alpha_pattern, module);
  const std::int64_t r = rp != nullptr && rp->is_number_integer() ? rp->get<std::int64_t>() : s.r;
  const double alpha = ap != nullptr && ap->is_number() ? ap->get<double>() : s.alpha;
  if (a.dim() != 2 || b.dim() != 2 || a.size(0) != r || b.size(1) != r)
    fail(f.path(), p.lora_a.at(module),
         "lora_A " + shape_text(a.sizes()) + " and lora_B " + shape_text(b.sizes()) + " do not have the rank " +
             std::to_string(r) + " that " + kConfig + " gives this module (r, rank_pattern)");
  const bool transpose = p.embedding.count(module) > 0 || s.fan_in_fan_out;
  at::Tensor delta = at::matmul(b, a);
  if (transpose) delta = delta.t();
  if (delta.sizes() != w.sizes())
    fail(f.path(), p.lora_b.at(module),
         "lora_B " + shape_text(b.sizes()) + " · lora_A " + shape_text(a.sizes()) + " gives " + shape_text(delta.sizes()) +
             ", but the base's " + module + ".weight is " + shape_text(w.sizes()));
  const double scale = s.rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / static_cast<double>(r);
  return w + delta * scale;
}

// Every tensor the adapter changes, in float32 (the others stay the base's).
std::map<std::string, at::Tensor> folded_tensors(const LoraSettings& s, const SafetensorsFile& f, const AdapterParts& p,
                                                 const HfModel& base) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [tensor, src] : p.replace) {
    const TensorEntry* e = base.find(tensor);
    if (e == nullptr)
      fail(f.path(), src, "replaces '" + tensor + "', which the base " + base.path() + " does not have" +
                              (tensor == "lm_head.weight" ? " (the base ties its head to the input embedding)" : ""));
    const at::Tensor t = f.tensor(src);
    if (std::vector<std::int64_t>(t.sizes().begin(), t.sizes().end()) != e->shape)
      fail(f.path(), src, "shape " + shape_text(t.sizes()) + " differs from the base's " + tensor + " " + shape_text(e->shape));
    out[tensor] = t.to(at::kFloat).clone();
  }
  for (const auto& [module, _] : p.lora_a) {
    const std::string tensor = module + ".weight";
    if (base.find(tensor) == nullptr)
      fail(f.path(), p.lora_a.at(module), "targets module '" + module + "', which the base " + base.path() + " does not have");
    const at::Tensor w = out.count(tensor) ? out.at(tensor) : base.tensor(tensor).to(at::kFloat);
    out[tensor] = fold_module(s, f, p, module, w);
  }
  return out;
}

void write_folded(const std::string& adapter, const std::string& base_path, const std::string& out) {
  const LoraSettings s = read_settings(adapter);
  const std::string weights = adapter + "/" + kWeights;
  if (!path_exists(weights))
    fail(adapter, kWeights, std::string("is missing beside ") + kConfig + ": a half-written adapter folder?");
  const auto f = SafetensorsFile::open(weights);
  const AdapterParts parts = split_tensors(*f);
  const HfModel base = HfModel::open(base_path);
  if (!base.config()) fail(base_path, "", "the base of a LoRA adapter must be a model folder with config.json");
  const std::map<std::string, at::Tensor> changed = folded_tensors(s, *f, parts, base);
  std::vector<TensorSpec> specs;
  for (const auto& name : base.tensor_names())
    specs.push_back({name, changed.count(name) ? DType::F32 : base.require(name).dtype, base.require(name).shape});
  HfModelWriter w(out, specs, 5'000'000'000ull);
  w.set_config_text(read_text_file(base_path + "/config.json"));
  w.copy_passthrough_files(base_path);
  ojson marker = {{"adapter", fs::absolute(adapter).lexically_normal().string()},
                  {"base", fs::absolute(base_path).lexically_normal().string()}, {"r", s.r}, {"lora_alpha", s.alpha},
                  {"use_rslora", s.rslora}, {"fold_version", kFoldVersion}, {"changed_tensors", changed.size()}};
  w.add_text_file(kMarker, marker.dump(2) + "\n");
  for (const auto& name : base.tensor_names()) w.write(name, changed.count(name) ? changed.at(name) : base.tensor(name));
  w.commit();
}

// The adapter's bytes and the base's files (path, size, modification time) name the fold.
std::string fold_key(const std::string& adapter, const std::string& base_path) {
  std::string material = std::to_string(kFoldVersion) + "\n" + read_text_file(adapter + "/" + kConfig) + "\n";
  if (path_exists(adapter + "/" + kWeights)) material += sha256_file(adapter + "/" + kWeights) + "\n";
  material += fs::weakly_canonical(base_path).string() + "\n";
  for (const auto& e : fs::directory_iterator(base_path)) {
    if (!e.is_regular_file()) continue;
    const auto mtime = e.last_write_time().time_since_epoch().count();
    material += e.path().filename().string() + " " + std::to_string(e.file_size()) + " " + std::to_string(mtime) + "\n";
  }
  return sha256_hex(material.data(), material.size());
}

}  // namespace

bool is_lora_adapter(const std::string& folder) { return is_directory(folder) && path_exists(folder + "/" + kConfig); }

std::string lora_adapter_base(const std::string& adapter) {
  const LoraSettings s = read_settings(adapter);
  const ojson& j = s.raw;
  if (!j.contains("base_model_name_or_path") || !j["base_model_name_or_path"].is_string())
    fail(s.path, "base_model_name_or_path", "names no base model; give the base explicitly");
  const std::string name = j["base_model_name_or_path"].get<std::string>();
  const std::string relative = (fs::path(adapter) / name).lexically_normal().string();
  if (!name.empty() && name[0] != '/' && path_exists(relative)) return relative;
  return resolve_model_path(name, s.path, "base_model_name_or_path");
}

std::string folded_cache_dir() {
  const char* ms = std::getenv("MS_CACHE_DIR");
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  const std::string root = ms != nullptr && *ms   ? std::string(ms)
                           : xdg != nullptr && *xdg ? std::string(xdg) + "/mergesweep"
                                                    : std::string(home != nullptr ? home : ".") + "/.cache/mergesweep";
  return root + "/folded";
}

std::string fold_lora_adapter(const std::string& adapter, const std::string& base) {
  const std::string dir = folded_cache_dir();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(dir, "", "cannot create the cache folder for folded adapters: " + ec.message() + " (set MS_CACHE_DIR)");
  const std::string name = fs::path(fs::absolute(adapter).lexically_normal()).filename().string();
  const std::string final_dir = dir + "/" + name + "-" + fold_key(adapter, base).substr(0, 16);
  if (path_exists(final_dir + "/" + kMarker)) return final_dir;  // folded before
  // Each process folds into its own folder, then one rename wins; the others use the winner's.
  const std::string part = final_dir + ".part-" + std::to_string(::getpid());
  fs::remove_all(part, ec);
  write_folded(adapter, base, part);
  fs::rename(part, final_dir, ec);
  if (ec) {
    fs::remove_all(part, ec);
    if (!path_exists(final_dir + "/" + kMarker)) fail(final_dir, "", "cannot move the folded adapter into place");
  }
  return final_dir;
}

std::string resolve_checkpoint(const std::string& text, const std::string& base, const std::string& file,
                               const std::string& field) {
  const auto plus = text.find('+');
  if (plus != std::string::npos && !path_exists(text)) {  // mergekit's model+lora
    const std::string model = resolve_model_path(text.substr(0, plus), file, field);
    const std::string lora = resolve_model_path(text.substr(plus + 1), file, field);
    if (!is_lora_adapter(lora)) fail(file, field, "'" + lora + "' after '+' is not a LoRA adapter folder (" + kConfig + ")");
    return fold_lora_adapter(lora, model);
  }
  const std::string path = resolve_model_path(text, file, field);
  if (!is_lora_adapter(path)) return path;
  return fold_lora_adapter(path, base.empty() ? lora_adapter_base(path) : base);
}

std::optional<FoldedAdapter> folded_from(const std::string& folder) {
  const std::string marker = folder + "/" + kMarker;
  if (!path_exists(marker)) return std::nullopt;
  try {
    const ojson j = ojson::parse(read_text_file(marker));
    return FoldedAdapter{j.at("adapter").get<std::string>(), j.at("r").get<std::int64_t>()};
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

}  // namespace ms::io
