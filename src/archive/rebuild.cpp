// `mergesweep archive model`: the merge of one archived config, rebuilt as the sweep ran it.
// The sweep merges through merge::ResidentModels with PlannedConfig::request(): members indexed by
// their global checkpoint number - 1, the spec's vocabulary choice, the float32 result cast to the
// eval dtype. The streaming merge computes the same float32 tensors (tests/archive/
// test_archive_model.cpp compares them bitwise), so writing them in the eval dtype gives the
// model that was evaluated.
#include "mergesweep/archive/rebuild.hpp"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <set>

#include "mergesweep/core/error.hpp"
#include "mergesweep/core/fingerprint.hpp"
#include "mergesweep/core/sha256.hpp"
#include "mergesweep/io/fs_util.hpp"
#include "mergesweep/io/hf_model.hpp"
#include "mergesweep/merge/registry.hpp"
#include "mergesweep/sweep/planner.hpp"
#include "mergesweep/sweep/spec.hpp"

namespace fs = std::filesystem;

namespace ms::archive {
namespace {

// The spec's settings that change the rebuilt tensors: eval.dtype and vocabulary. Read from the
// text alone: parse_spec would expand the spec's globs, which need not resolve from here.
void read_spec_settings(const std::string& archive, const std::string& text, RebuildPlan& p) {
  YAML::Node doc;
  try {
    doc = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail(archive, "spec_text", std::string("the recorded spec is not YAML: ") + e.what());
  }
  if (!doc.IsMap()) return;
  if (doc["vocabulary"] && doc["vocabulary"].IsScalar()) p.vocabulary = doc["vocabulary"].as<std::string>();
  if (doc["eval"] && doc["eval"].IsMap() && doc["eval"]["dtype"] && doc["eval"]["dtype"].IsScalar())
    p.eval_dtype = doc["eval"]["dtype"].as<std::string>();
}

// A model's folder from its recorded files. Paths were recorded as the sweep resolved them (a
// relative one is relative to where the sweep ran); when that does not exist from here, the
// archive's own folder is tried (a study folder moved as a whole).
std::string resolve_recorded(const std::string& archive, const std::string& path) {
  if (path.empty() || path.front() == '/' || io::path_exists(path)) return path;
  const fs::path beside = fs::path(archive).parent_path() / path;
  return io::path_exists(beside.string()) ? beside.lexically_normal().string() : path;
}

// "lambda=1,normalize=true,trim=per_tensor,density=0.3,weight=1" -> the method's parameters and the
// per-member weight and density (appended by PlannedConfig::params()).
sweep::MethodPoint point_of(const RebuildPlan& p, const merge::Method& method) {
  sweep::MethodPoint pt;
  pt.method = &method;
  std::map<std::string, std::string> given;
  const std::string& s = p.config.params;
  for (std::size_t at = 0; at < s.size();) {
    const std::size_t comma = std::min(s.find(',', at), s.size());
    const std::string kv = s.substr(at, comma - at);
    const std::size_t eq = kv.find('=');
    if (eq == std::string::npos) fail(p.archive, "/configs/params", "'" + s + "' is not name=value,...");
    const std::string key = kv.substr(0, eq), value = kv.substr(eq + 1);
    if (key == "weight" && method.uses_weight) pt.weight = std::stod(value);
    else if (key == "density" && method.uses_density) pt.density = std::stod(value);
    else given[key] = value;
    at = comma + 1;
  }
  pt.params = merge::validate_params(method.params, given, p.archive,
                                     "config " + config_id_hex(p.config.id) + " (method '" + method.name + "')");
  pt.canonical = pt.params.canonical();
  return pt;
}

// The base's and the members' folders, names and files; the request with each member indexed as
// PlannedConfig::request() indexes it (the global checkpoint number - 1).
void fill_models(const Contents& c, const std::vector<int>& members, const sweep::MethodPoint& point, RebuildPlan& p) {
  std::set<int> wanted(members.begin(), members.end());
  wanted.insert(0);
  std::map<int, std::string> folder, name;
  for (auto f : c.checkpoints) {
    if (!wanted.count(f.model)) continue;
    f.path = resolve_recorded(p.archive, f.path);
    if (!folder.count(f.model)) folder[f.model] = fs::path(f.path).parent_path().string();
    name[f.model] = f.name;
    p.files.push_back(f);
  }
  for (int k : wanted)
    if (!folder.count(k)) fail(p.archive, "/checkpoints", "no file recorded for model " + std::to_string(k));

  merge::StreamingJob& job = p.job;
  job.source_file = p.archive;
  job.base_path = folder[0];
  job.base_field = "/checkpoints (model 0, " + name[0] + ")";
  p.base_name = name[0];
  job.request.method = point.method;
  job.request.params = point.params;
  for (int k : members) {
    merge::Member m;
    m.name = folder[k];
    m.index = k - 1;  // as PlannedConfig::request(): the global checkpoint index
    m.weight = point.weight;
    m.density = point.density;
    job.request.members.push_back(m);
    job.member_paths.push_back(folder[k]);
    job.member_fields.push_back("/checkpoints (model " + std::to_string(k) + ", " + name[k] + ")");
    p.member_names.push_back(name[k]);
  }
}

}  // namespace

std::uint64_t parse_config_id(const std::string& text, const std::string& field) {
  std::string t = text;
  if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) t = t.substr(2);
  bool hex = !t.empty() && t.size() <= 16;
  for (char c : t) hex = hex && std::isxdigit(static_cast<unsigned char>(c));
  if (!hex)
    fail("", field, "'" + text + "' is not a config id (16 hex digits, as `mergesweep sweep --plan --list` and "
                    "`mergesweep archive top` print them)");
  return std::stoull(t, nullptr, 16);
}

std::string config_id_hex(std::uint64_t id) {
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(id));
  return b;
}

// Members, paths and method of the config; no file is read besides the archive.
RebuildPlan plan_rebuild(const std::string& archive, std::uint64_t id) {
  const Contents c = read(archive);
  RebuildPlan p;
  p.archive = archive;
  p.attributes = c.attributes;
  const std::string hex = config_id_hex(id);
  const ConfigResult* found = nullptr;
  for (const auto& r : c.configs) {
    if (r.config.id == id) found = &r;
    if (r.config.kind == "base") p.base_results = r.results;
  }
  if (!found) {
    for (const auto& f : c.failures)
      if (f.config.id == id)
        fail(archive, hex, "this config failed (" + f.failure + ": " + f.message +
                               ") and has no results; rerun the sweep to retry it");
    fail(archive, hex, "no such config among the " + std::to_string(c.configs.size()) +
                           " committed ones (ids: mergesweep sweep SPEC --plan --list, mergesweep archive top)");
  }
  p.config = found->config;
  p.results = found->results;
  p.fingerprint = found->fingerprints;
  if (p.config.kind != "merge") {
    std::string folder;
    for (const auto& f : c.checkpoints)
      if (f.model == (p.config.kind == "base" ? 0 : p.config.members.at(0))) folder = fs::path(f.path).parent_path();
    fail(archive, hex, "config " + hex + " is the " + (p.config.kind == "base" ? "base" : "checkpoint") +
                           " alone, not a merge: its model is the folder " + folder);
  }
  const merge::Method* method = merge::find_method(p.config.method);
  if (!method) fail(archive, hex, "method '" + p.config.method + "' is unknown to this mergesweep " + "build");
  read_spec_settings(archive, c.attributes.count("spec_text") ? c.attributes.at("spec_text") : "", p);

  const sweep::MethodPoint point = point_of(p, *method);
  const std::vector<int> members(p.config.members.begin(), p.config.members.end());
  // The recorded id is a hash of exactly what the merge depends on: recomputing it proves the
  // parameters were read back as the sweep had them.
  if (sweep::merge_config_id(point, members) != id)
    fail(archive, hex, "method '" + method->name + "' with parameters '" + p.config.params + "' and members " +
                           std::to_string(members.size()) + " hash to config id " +
                           config_id_hex(sweep::merge_config_id(point, members)) +
                           ", not this one: the archive was written by a mergesweep whose ids differ");

  fill_models(c, members, point, p);
  sweep::SweepSpec spec;
  spec.vocabulary = p.vocabulary;
  p.job.vocab = spec.vocab_choice();
  p.job.out_dtype = p.eval_dtype;  // the sweep casts the float32 merge to the eval dtype, then evaluates
  return p;
}

void check_checkpoints(const RebuildPlan& p) {
  for (const auto& f : p.files) {
    const std::string who = f.model == 0 ? "the base (" + f.name + ")" : "checkpoint " + std::to_string(f.model) + " (" + f.name + ")";
    if (!io::path_exists(f.path))
      fail(f.path, "", "missing: the archive records this file of " + who + " with sha256 " + f.sha256 +
                           "; refusing to rebuild config " + config_id_hex(p.config.id));
    const std::string now = sha256_file(f.path);
    if (now != f.sha256)
      fail(f.path, "", "changed since the sweep: its sha256 is " + now + ", the archive recorded " + f.sha256 +
                           " for " + who + "; refusing to rebuild config " + config_id_hex(p.config.id) +
                           " from other weights");
  }
}

std::uint64_t folder_fingerprint(const std::string& dir) {
  const io::HfModel m = io::HfModel::open(dir);
  std::vector<std::pair<std::string, std::uint64_t>> digests;
  for (const auto& name : m.tensor_names()) {
    const io::TensorEntry& e = m.require(name);
    digests.emplace_back(name, xxh64(m.shard_of(name).data(e), e.nbytes()));
  }
  return model_fingerprint(std::move(digests));
}

RebuildReport rebuild_model(RebuildPlan plan, const std::string& out, c10::Device device,
                            const std::function<void(std::size_t, std::size_t)>& progress) {
  if (io::path_exists(out)) fail(out, "", "already exists; choose a new folder for the rebuilt model");
  check_checkpoints(plan);
  // Merged into a hidden sibling, completed with the card, then renamed: OUT appears whole or not at all.
  const std::string tmp = io::temp_sibling(out);
  plan.job.out_dir = tmp;
  plan.job.device = device;
  try {
    RebuildReport rep;
    rep.merge = merge::merge_streaming(plan.job, progress);
    // Of the written files, not of the merge's tensors in memory: what the user gets is checked.
    rep.fingerprint = folder_fingerprint(tmp);
    if (!plan.fingerprint.empty()) {
      const FingerprintRecord& f = plan.fingerprint.front();
      rep.verdict = f.fingerprint == rep.fingerprint && f.dtype == plan.eval_dtype ? RebuildReport::Verdict::Match
                                                                                    : RebuildReport::Verdict::Mismatch;
    }
    io::write_text_file(tmp + "/README.md", model_card(plan, rep));
    if (io::path_exists(out)) fail(out, "", "appeared while rebuilding; refusing to overwrite");
    io::rename_into_place(tmp, out);
    return rep;
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
}

}  // namespace ms::archive
