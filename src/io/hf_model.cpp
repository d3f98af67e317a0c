#include "mergesweep/io/hf_model.hpp"

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "mergesweep/core/error.hpp"
#include "json_error.hpp"
#include "mergesweep/io/fs_util.hpp"

namespace ms::io {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string join(const std::string& dir, const std::string& name) { return dir + "/" + name; }

// Index shard names are relative paths inside the folder: no absolute paths, no '..'.
void check_shard_name(const std::string& name, const std::string& index_path, const std::string& tensor) {
  const std::string field = "weight_map['" + tensor + "']";
  if (name.empty()) fail(index_path, field, "shard file name is empty");
  if (name.front() == '/') fail(index_path, field, "shard path '" + name + "' is absolute; it must be relative to the model folder");
  for (const auto& part : fs::path(name)) {
    if (part == "..") fail(index_path, field, "shard path '" + name + "' escapes the model folder with '..'");
  }
  if (name.find('\\') != std::string::npos || name.find('\0') != std::string::npos) {
    fail(index_path, field, "shard path '" + name + "' contains a backslash or NUL");
  }
}

}  // namespace

const std::vector<std::string>& passthrough_file_names() {
  static const std::vector<std::string> kNames = {
      "tokenizer.json",        "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
      "vocab.json",            "merges.txt",            "added_tokens.json",       "generation_config.json",
      "chat_template.jinja",   "chat_template.json"};
  return kNames;
}

HfModel HfModel::open(const std::string& path_in) {
  HfModel m;
  std::string path = path_in;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  m.path_ = path;
  if (!path_exists(path)) fail(path, "", "no such file or folder");
  if (!is_directory(path)) {
    auto f = SafetensorsFile::open(path);
    for (const auto& e : f->header().tensors) m.where_.emplace(e.name, std::make_pair(std::size_t{0}, &e));
    m.shards_.push_back(std::move(f));
    return m;
  }
  m.is_folder_ = true;
  m.config_ = read_model_config(join(path, "config.json"));
  const std::string index = join(path, kIndexFile);
  const std::string single = join(path, kSingleFile);
  if (!path_exists(index)) {
    if (!path_exists(single)) {
      fail(path, "", std::string("no ") + kSingleFile + " or " + kIndexFile + " in the model folder");
    }
    auto f = SafetensorsFile::open(single);
    for (const auto& e : f->header().tensors) m.where_.emplace(e.name, std::make_pair(std::size_t{0}, &e));
    m.shards_.push_back(std::move(f));
    m.strip_peft_prefix();
    return m;
  }

  m.index_path_ = index;
  json doc;
  try {
    doc = json::parse(read_text_file(index));
  } catch (const json::exception& e) {  // parse errors and number overflow alike
    fail(index, "", "invalid JSON: " + detail::json_error_text(e));
  }
  if (!doc.is_object()) fail(index, "", "index must be a JSON object with a weight_map");
  if (!doc.contains("weight_map") || !doc["weight_map"].is_object()) {
    fail(index, "weight_map", "missing or not an object mapping tensor names to shard files");
  }
  if (doc.contains("metadata") && doc["metadata"].is_object() && doc["metadata"].contains("total_size")) {
    const json& ts = doc["metadata"]["total_size"];
    if (!ts.is_number() || ts.get<double>() < 0) fail(index, "metadata.total_size", "must be a non-negative number, got " + ts.dump());
    m.index_total_size_ = static_cast<std::uint64_t>(ts.get<double>());
  }
  std::map<std::string, std::size_t> shard_index;  // shard file name -> position in shards_
  std::map<std::string, std::string> listed;       // tensor -> shard name
  for (const auto& [tensor, value] : doc["weight_map"].items()) {
    if (!value.is_string()) fail(index, "weight_map['" + tensor + "']", "must be a shard file name, got " + value.dump());
    const std::string shard = value.get<std::string>();
    check_shard_name(shard, index, tensor);
    if (!shard_index.count(shard)) {
      const std::string shard_path = join(path, shard);
      if (!path_exists(shard_path)) {
        fail(index, "weight_map['" + tensor + "']", "names shard '" + shard + "', which does not exist in " + path);
      }
      if (!resolves_inside(path, shard_path)) {
        fail(index, "weight_map['" + tensor + "']", "shard '" + shard + "' resolves (through a symlink) outside the model folder");
      }
      shard_index.emplace(shard, m.shards_.size());
      m.shards_.push_back(SafetensorsFile::open(shard_path));
    }
    listed.emplace(tensor, shard);
  }
  for (const auto& [tensor, shard] : listed) {
    const std::size_t s = shard_index.at(shard);
    const TensorEntry* e = m.shards_[s]->header().find(tensor);
    if (e == nullptr) fail(index, "weight_map['" + tensor + "']", "maps the tensor to '" + shard + "', which does not contain it");
    m.where_.emplace(tensor, std::make_pair(s, e));
  }
  for (const auto& [shard, s] : shard_index) {
    for (const auto& e : m.shards_[s]->header().tensors) {
      const auto it = listed.find(e.name);
      if (it == listed.end()) {
        fail(join(path, shard), "'" + e.name + "'", "tensor is not listed in the index's weight_map");
      }
      if (it->second != shard) {
        fail(join(path, shard), "'" + e.name + "'", "tensor also appears in shard '" + it->second + "', where the index puts it");
      }
    }
  }
  m.strip_peft_prefix();
  return m;
}

// A full checkpoint saved from a PeftModel (its state dict, after merge_and_unload or with
// modules_to_save) names every tensor "base_model.model.<transformers name>". Only when every
// tensor carries it: the names are then those of the model inside, and the files stay as they
// are (entries keep their stored names; lookups go through where_).
void HfModel::strip_peft_prefix() {
  static const std::string kPrefix = "base_model.model.";
  if (where_.empty()) return;
  for (const auto& [name, _] : where_)
    if (name.rfind(kPrefix, 0) != 0 || name.size() == kPrefix.size()) return;
  decltype(where_) renamed;
  for (auto& [name, w] : where_) renamed.emplace(name.substr(kPrefix.size()), w);
  where_ = std::move(renamed);
  stripped_prefix_ = kPrefix;
}

std::vector<std::string> HfModel::tensor_names() const {
  std::vector<std::string> names;
  names.reserve(where_.size());
  for (const auto& [name, _] : where_) names.push_back(name);
  return names;
}

const TensorEntry* HfModel::find(const std::string& name) const noexcept {
  const auto it = where_.find(name);
  return it == where_.end() ? nullptr : it->second.second;
}

const TensorEntry& HfModel::require(const std::string& name) const {
  const TensorEntry* e = find(name);
  if (e == nullptr) fail(path_, "'" + name + "'", "tensor not found in the model");
  return *e;
}

const SafetensorsFile& HfModel::shard_of(const std::string& name) const {
  require(name);
  return *shards_[where_.at(name).first];
}

std::uint64_t HfModel::total_bytes() const noexcept {
  std::uint64_t n = 0;
  for (const auto& [_, w] : where_) n += w.second->nbytes();
  return n;
}

std::uint64_t HfModel::total_params() const noexcept {
  std::uint64_t n = 0;
  for (const auto& [_, w] : where_) n += static_cast<std::uint64_t>(w.second->numel());
  return n;
}

HfModelWriter::HfModelWriter(std::string out_dir, std::vector<TensorSpec> specs, std::uint64_t max_shard_bytes,
                             const std::map<std::string, std::string>& metadata)
    : out_dir_(std::move(out_dir)) {
  while (out_dir_.size() > 1 && out_dir_.back() == '/') out_dir_.pop_back();
  if (path_exists(out_dir_)) fail(out_dir_, "", "already exists; refusing to overwrite (remove it or pick another output)");
  if (max_shard_bytes == 0) fail(out_dir_, "max_shard_size", "must be at least 1 byte");
  // Plan shards greedily in the given order.
  std::vector<std::vector<TensorSpec>> plan;
  std::uint64_t current = 0;
  for (auto& s : specs) {
    const std::uint64_t n = s.nbytes();
    if (plan.empty() || (current > 0 && current + n > max_shard_bytes)) {
      plan.emplace_back();
      current = 0;
    }
    current += n;
    total_size_ += n;
    plan.back().push_back(std::move(s));
  }
  if (plan.empty()) plan.emplace_back();
  tmp_dir_ = temp_sibling(out_dir_);
  std::error_code ec;
  fs::create_directories(tmp_dir_, ec);
  if (ec) fail(out_dir_, "", "cannot create the output folder: " + ec.message());
  const std::size_t count = plan.size();
  for (std::size_t i = 0; i < count; ++i) {
    char name[64];
    if (count == 1) std::snprintf(name, sizeof name, "%s", kSingleFile);
    else std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, count);
    for (const auto& s : plan[i]) shard_of_.emplace(s.name, i);
    shards_.push_back(std::make_unique<SafetensorsWriter>(join(tmp_dir_, name), std::move(plan[i]), metadata));
  }
}

HfModelWriter::~HfModelWriter() {
  shards_.clear();  // removes uncommitted shard files
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(tmp_dir_, ec);
  }
}

void HfModelWriter::write(const std::string& name, const void* data, std::uint64_t nbytes) {
  const auto it = shard_of_.find(name);
  if (it == shard_of_.end()) fail(out_dir_, "'" + name + "'", "tensor is not part of the planned output");
  shards_[it->second]->write(name, data, nbytes);
}

void HfModelWriter::copy_passthrough_files(const std::string& src_dir) {
  for (const auto& name : passthrough_file_names()) {
    const std::string src = join(src_dir, name);
    if (!path_exists(src)) continue;
    std::error_code ec;
    fs::copy_file(src, join(tmp_dir_, name), fs::copy_options::overwrite_existing, ec);
    if (ec) fail(src, "", "cannot copy into the output folder: " + ec.message());
  }
}

void HfModelWriter::add_text_file(const std::string& name, std::string text) { extra_files_[name] = std::move(text); }

void HfModelWriter::commit() {
  if (config_text_.empty()) fail(out_dir_, "config.json", "no config was given for the output model");
  for (auto& s : shards_) s->commit();
  if (shards_.size() > 1) {
    json index;
    index["metadata"] = {{"total_size", total_size_}};
    json wm = json::object();
    for (const auto& [name, i] : shard_of_) {
      const std::string& p = shards_[i]->path();
      wm[name] = p.substr(p.find_last_of('/') + 1);
    }
    index["weight_map"] = std::move(wm);
    write_text_file(join(tmp_dir_, kIndexFile), index.dump(2) + "\n");
  }
  write_text_file(join(tmp_dir_, "config.json"), config_text_);
  for (const auto& [name, text] : extra_files_) write_text_file(join(tmp_dir_, name), text);
  if (path_exists(out_dir_)) fail(out_dir_, "", "appeared while writing; refusing to overwrite");
  rename_into_place(tmp_dir_, out_dir_);
  committed_ = true;
}

}  // namespace ms::io
