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

// A module's LoRA as PEFT's merge_and_unload reads it: the rank and alpha its patterns give,
// checked against the base's tensor (`shape`) it folds into.
void read_module(const LoraSettings& s, const SafetensorsFile& f, const AdapterParts& p, const std::string& module,
                 const std::vector<std::int64_t>& shape, LoraChange& c) {
  c.a = f.tensor(p.lora_a.at(module));
  c.b = f.tensor(p.lora_b.at(module));
  const ojson* rp = pattern_for(s.rank_pattern, module);
  const ojson* ap = pattern_for(s.alpha_pattern, module);
  const std::int64_t r = rp != nullptr && rp->is_number_integer() ? rp->get<std::int64_t>() : s.r;
  const double alpha = ap != nullptr && ap->is_number() ? ap->get<double>() : s.alpha;
  if (c.a.dim() != 2 || c.b.dim() != 2 || c.a.size(0) != r || c.b.size(1) != r)
    fail(f.path(), p.lora_a.at(module),
         "lora_A " + shape_text(c.a.sizes()) + " and lora_B " + shape_text(c.b.sizes()) + " do not have the rank " +
             std::to_string(r) + " that " + kConfig + " gives this module (r, rank_pattern)");
  c.transpose = p.embedding.count(module) > 0 || s.fan_in_fan_out;
  const std::vector<std::int64_t> delta = c.transpose ? std::vector<std::int64_t>{c.a.size(1), c.b.size(0)}
                                                      : std::vector<std::int64_t>{c.b.size(0), c.a.size(1)};
  if (delta != shape)
    fail(f.path(), p.lora_b.at(module),
         "lora_B " + shape_text(c.b.sizes()) + " · lora_A " + shape_text(c.a.sizes()) + " gives " + shape_text(delta) +
             ", but the base's " + module + ".weight is " + shape_text(shape));
  c.scale = s.rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / static_cast<double>(r);
}

// Every base tensor the adapter changes (the others stay the base's), checked against the base.
std::map<std::string, LoraChange> read_changes(const LoraSettings& s, const SafetensorsFile& f, const AdapterParts& p,
                                               const HfModel& base) {
  std::map<std::string, LoraChange> out;
  for (const auto& [tensor, src] : p.replace) {
    const TensorEntry* e = base.find(tensor);
    if (e == nullptr)
      fail(f.path(), src, "replaces '" + tensor + "', which the base " + base.path() + " does not have" +
                              (tensor == "lm_head.weight" ? " (the base ties its head to the input embedding)" : ""));
    const at::Tensor t = f.tensor(src);
    if (std::vector<std::int64_t>(t.sizes().begin(), t.sizes().end()) != e->shape)
      fail(f.path(), src, "shape " + shape_text(t.sizes()) + " differs from the base's " + tensor + " " + shape_text(e->shape));
    out[tensor].replaced = t;
  }
  for (const auto& [module, _] : p.lora_a) {
    const std::string tensor = module + ".weight";
    const TensorEntry* e = base.find(tensor);
    if (e == nullptr)
      fail(f.path(), p.lora_a.at(module), "targets module '" + module + "', which the base " + base.path() + " does not have");
    read_module(s, f, p, module, e->shape, out[tensor]);
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
  const std::map<std::string, LoraChange> changed = read_changes(s, *f, parts, base);
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
  for (const auto& name : base.tensor_names()) {
    const auto it = changed.find(name);
    if (it == changed.end()) {
      w.write(name, base.tensor(name));
      continue;
    }
    const at::Tensor folded = at::empty(base.require(name).shape, at::kFloat);
    fold_lora_into(folded, it->second, base.tensor(name));
    w.write(name, folded);
  }
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

std::uint64_t LoraChange::nbytes() const {
  std::uint64_t n = 0;
  for (const at::Tensor* t : {&a, &b, &replaced})
    if (t->defined()) n += t->nbytes();
  return n;
}

void fold_lora_into(const at::Tensor& out, const LoraChange& c, const at::Tensor& base) {
  const at::Tensor& w = c.replaced.defined() ? c.replaced : base;
  if (!c.folds()) {
    out.copy_(w);  // exact widening
    return;
  }
  at::Tensor delta = at::matmul(c.b.cpu().to(at::kFloat), c.a.cpu().to(at::kFloat));
  if (c.transpose) delta = delta.t();
  out.copy_(delta * c.scale);
  out.add_(w);  // s·B·A + w is w + s·B·A to the bit: IEEE addition commutes, w widens exactly
}

std::optional<FactoredAdapter> FactoredAdapter::of_folded(const std::string& folded, const std::string& base) {
  const std::string marker = folded + "/" + kMarker;
  if (!path_exists(marker)) return std::nullopt;
  FactoredAdapter out;
  std::string folded_base;
  try {
    const ojson j = ojson::parse(read_text_file(marker));
    out.adapter_ = j.at("adapter").get<std::string>();
    folded_base = j.at("base").get<std::string>();
    out.rank_ = j.at("r").get<std::int64_t>();
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
  std::error_code ec;
  if (!fs::equivalent(folded_base, base, ec) || ec) return std::nullopt;
  if (!is_lora_adapter(out.adapter_) || !path_exists(out.adapter_ + "/" + kWeights)) return std::nullopt;
  // The folder's name ends in its fold key: the adapter and base it was folded from, unchanged.
  const std::string key = "-" + fold_key(out.adapter_, base).substr(0, 16);
  std::string name = fs::path(folded).lexically_normal().string();
  while (name.size() > 1 && name.back() == '/') name.pop_back();
  if (!ends_with(name, key)) return std::nullopt;
  const LoraSettings s = read_settings(out.adapter_);
  const auto f = SafetensorsFile::open(out.adapter_ + "/" + kWeights);
  out.changes_ = read_changes(s, *f, split_tensors(*f), HfModel::open(base));
  return out;
}

const LoraChange* FactoredAdapter::change(const std::string& name) const {
  const auto it = changes_.find(name);
  return it == changes_.end() ? nullptr : &it->second;
}

}  // namespace ms::io
