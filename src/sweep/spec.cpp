#include "mergesweep/sweep/spec.hpp"

#include <glob.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <set>

#include "mergesweep/core/error.hpp"
#include "mergesweep/core/units.hpp"
#include "mergesweep/io/fs_util.hpp"
#include "mergesweep/io/family_check.hpp"
#include "mergesweep/io/hf_model.hpp"
#include "mergesweep/io/hub_cache.hpp"
#include "mergesweep/io/lora_adapter.hpp"
#include "mergesweep/io/yaml_fields.hpp"
#include "mergesweep/merge/method.hpp"

namespace ms::sweep {
namespace {

namespace fs = std::filesystem;

// Every YAML error of a spec reads as the merge configurations' do (io::YamlFields).
using Ctx = io::YamlFields;

std::string resolve(const std::string& dir, const std::string& p) {
  if (p.empty() || p[0] == '/') return p;
  return (fs::path(dir) / p).lexically_normal().string();
}

// A model: a folder (relative to the spec), or a hub name `org/name[@revision]` resolved from the
// local Hugging Face cache when no such folder exists (io/hub_cache.hpp). Only when the spec is
// loaded to run (`expand`): parsing alone reads no file system.
std::string model_path(const Ctx& c, const YAML::Node& n, const std::string& field, const std::string& dir,
                       const std::string& text, bool expand) {
  const std::string full = resolve(dir, text);
  if (!expand || io::path_exists(full) || !io::parse_hub_name(text)) return full;
  std::string line = Ctx::line_prefix(n);  // "line 3: " -> field "base: line 3"
  if (!line.empty()) line = ": " + line.substr(0, line.size() - 2);
  return io::resolve_model_path(text, c.file(), field + line);
}

// A list of paths or globs (or one string): globs expand sorted; a pattern matching nothing is an
// error naming it. `models`: entries without a glob may be hub names (model_path).
std::vector<std::string> paths(const Ctx& c, const YAML::Node& n, const std::string& field, const std::string& dir,
                               bool expand, bool models = false) {
  std::vector<std::string> pats;
  if (n.IsScalar()) {
    pats.push_back(n.as<std::string>());
  } else if (n.IsSequence()) {
    for (std::size_t i = 0; i < n.size(); ++i) pats.push_back(c.scalar(n[i], field + "[" + std::to_string(i) + "]"));
  } else {
    c.fail(n, field, "must be a path, a glob or a list of them");
  }
  std::vector<std::string> out;
  for (const auto& p : pats) {
    const std::string full = resolve(dir, p);
    if (!expand || full.find_first_of("*?[") == std::string::npos) {
      out.push_back(models ? model_path(c, n, field, dir, p, expand) : full);
      continue;
    }
    glob_t g = {};
    const int rc = ::glob(full.c_str(), 0, nullptr, &g);
    std::vector<std::string> hits;
    for (std::size_t i = 0; rc == 0 && i < g.gl_pathc; ++i) hits.emplace_back(g.gl_pathv[i]);
    globfree(&g);
    if (hits.empty()) c.fail(n, field, "the pattern '" + p + "' matches no file (looked for " + full + ")");
    std::sort(hits.begin(), hits.end());
    out.insert(out.end(), hits.begin(), hits.end());
  }
  std::set<std::string> seen;
  for (const auto& p : out)
    if (!seen.insert(p).second) c.fail(n, field, "lists '" + p + "' twice");
  return out;
}

// A checkpoint's default short name from how the spec gives it (before hub or adapter
// resolution): the last `depth` components of its folder's path (depth 1: the folder's name); for
// model+adapter the adapter's; for a hub name org/name[@rev] the repository's (depth 2: org/name).
std::string default_checkpoint_name(std::string text, int depth = 1) {
  const auto plus = text.find('+');
  if (plus != std::string::npos && !io::path_exists(text)) text = text.substr(plus + 1);
  while (text.size() > 1 && text.back() == '/') text.pop_back();
  const io::HubSnapshot hub = io::hub_snapshot_of(text);  // already resolved to a cache snapshot
  if (!hub.repo.empty()) text = hub.repo;
  else if (!io::path_exists(text) && io::parse_hub_name(text)) text = io::parse_hub_name(text)->repo;
  fs::path p(text), name = p.filename();
  for (int d = 1; d < depth && p.has_parent_path() && p.parent_path() != p; ++d) {
    p = p.parent_path();
    if (p.filename().empty() || p.filename() == "/") break;
    name = p.filename() / name;
  }
  return name.generic_string();
}

// Default names that clash (run1/adapter and run2/adapter are both "adapter") take one more
// folder of their paths until they differ from every other name ("run1/adapter"); given names
// never change. A clash that no depth resolves is left for the caller to refuse.
void disambiguate_default_names(const std::vector<std::string>& texts, const std::vector<bool>& given,
                                std::vector<std::string>& names) {
  std::vector<int> depth(names.size(), 1);
  for (int round = 0; round < 64; ++round) {
    std::map<std::string, int> count;
    for (const auto& n : names) ++count[n];
    bool changed = false;
    for (std::size_t k = 0; k < names.size(); ++k) {
      if (given[k] || count[names[k]] < 2) continue;
      const std::string longer = default_checkpoint_name(texts[k], depth[k] + 1);
      if (longer == names[k]) continue;  // the path has no more folders
      ++depth[k];
      names[k] = longer;
      changed = true;
    }
    if (!changed) return;
  }
}

// A checkpoint name is shown in tables and joined with commas in `member_names`.
void check_checkpoint_name(const Ctx& c, const YAML::Node& n, const std::string& field, const std::string& name) {
  if (name.empty()) c.fail(n, field, "a checkpoint name must not be empty");
  if (name.size() > 256) c.fail(n, field, "a checkpoint name is at most 256 bytes (the archive's width)");
  for (unsigned char ch : name)
    if (ch == ',' || ch < 0x20) c.fail(n, field, "'" + name + "': a checkpoint name may not contain commas or control characters");
}

// `checkpoints:`: a path or glob, or a list whose entries are paths, globs, or {path: P, name: N}
// (one model, no glob). Fills the paths (unresolved hub names and adapters as written) and names;
// refuses a path listed twice and a name given twice.
void parse_checkpoints(const Ctx& c, const YAML::Node& n, const std::string& dir, bool expand, SweepSpec& s) {
  if (n.IsMap()) {  // {count: K}: K checkpoints shaped like the base, not yet on disk (--plan only)
    c.check_keys(n, "checkpoints.", {"count"});
    if (!n["count"]) c.fail(n, "checkpoints.count", "is required: {count: K} sizes a study of K checkpoints like the base");
    const auto k = static_cast<std::size_t>(c.integer(n["count"], "checkpoints.count", 1, 64));
    s.shape_only = true;
    for (std::size_t i = 0; i < k; ++i) {
      s.checkpoints.push_back(s.base);
      s.checkpoint_names.push_back("checkpoint-" + std::to_string(i + 1));
    }
    return;
  }
  std::vector<YAML::Node> nodes;
  std::vector<std::string> texts;  // what each name is made from
  std::vector<bool> given;         // a name: in the spec, never changed
  auto add_plain = [&](const YAML::Node& e, const std::string& field) {
    for (const auto& p : paths(c, e, field, dir, expand, /*models=*/true)) {
      s.checkpoints.push_back(p);
      s.checkpoint_names.push_back(default_checkpoint_name(p));
      nodes.push_back(e);
      texts.push_back(p);
      given.push_back(false);
    }
  };
  if (!n.IsSequence()) {
    add_plain(n, "checkpoints");
  } else {
    for (std::size_t i = 0; i < n.size(); ++i) {
      const std::string field = "checkpoints[" + std::to_string(i) + "]";
      if (!n[i].IsMap()) {
        add_plain(n[i], "checkpoints");  // a path or glob: errors name the field as a whole list's
        continue;
      }
      c.check_keys(n[i], field, {"path", "name"});
      if (!n[i]["path"]) c.fail(n[i], field + ".path", "is required (a model folder, hub name or adapter)");
      const std::string text = c.scalar(n[i]["path"], field + ".path");
      if (text.find_first_of("*?[") != std::string::npos)
        c.fail(n[i]["path"], field + ".path", "'" + text + "' is a pattern; an entry with a name is one model");
      s.checkpoints.push_back(model_path(c, n[i]["path"], field + ".path", dir, text, expand));
      s.checkpoint_names.push_back(n[i]["name"] ? c.scalar(n[i]["name"], field + ".name") : default_checkpoint_name(text));
      nodes.push_back(n[i]);
      texts.push_back(text);
      given.push_back(static_cast<bool>(n[i]["name"]));
    }
  }
  disambiguate_default_names(texts, given, s.checkpoint_names);
  std::map<std::string, std::size_t> path_at, name_at;
  for (std::size_t k = 0; k < s.checkpoints.size(); ++k) {
    const std::string field = "checkpoints[" + std::to_string(k) + "]";
    if (!path_at.emplace(s.checkpoints[k], k).second) c.fail(nodes[k], "checkpoints", "lists '" + s.checkpoints[k] + "' twice");
    check_checkpoint_name(c, nodes[k], field, s.checkpoint_names[k]);
    const auto [it, fresh] = name_at.emplace(s.checkpoint_names[k], k);
    if (!fresh)
      c.fail(nodes[k], "checkpoints",
             "two checkpoints are named '" + s.checkpoint_names[k] + "' (checkpoints[" + std::to_string(it->second) +
                 "]: " + s.checkpoints[it->second] + ", and " + field + ": " + s.checkpoints[k] +
                 "); names must be unique: give each a name, e.g. {path: " + s.checkpoints[k] + ", name: " +
                 s.checkpoint_names[k] + "-" + std::to_string(k + 1) + "}");
  }
}

// Keys of a method entry that are per-member values rather than method parameters.
const std::set<std::string> kMemberKeys = {"weight", "density"};

using Axes = std::vector<std::pair<std::string, std::vector<std::string>>>;

const merge::Method& method_of_entry(const Ctx& c, const YAML::Node& e, const std::string& where) {
  if (!e.IsMap() || !e["method"]) c.fail(e, where, "a mapping with 'method: <name>'", Ctx::describe(e));
  const std::string name = c.scalar(e["method"], where + ".method");
  const merge::Method* m = merge::find_method(name);
  if (m == nullptr) {
    std::string names;
    for (const merge::Method* k : merge::all_methods()) names += (names.empty() ? "" : ", ") + k->name;
    c.fail(e["method"], where + ".method", "unknown method '" + name + "' (known: " + names + ")");
  }
  std::set<std::string> allowed = {"method", "sizes"};
  for (const auto& p : m->params) allowed.insert(p.name);
  if (m->uses_weight) allowed.insert("weight");
  if (m->uses_density) allowed.insert("density");
  c.check_keys(e, where, allowed);
  return *m;
}

// The grid's axes: every key but method/sizes with its listed values, in key order (a stable grid order).
Axes grid_axes(const Ctx& c, const YAML::Node& e, const std::string& where) {
  Axes axes;
  for (const auto& kv : e) {
    const std::string key = kv.first.as<std::string>();
    if (key == "method" || key == "sizes") continue;
    std::vector<std::string> vals;
    if (kv.second.IsSequence()) {
      if (kv.second.size() == 0) c.fail(kv.second, where + "." + key, "an empty list gives no configurations");
      for (std::size_t j = 0; j < kv.second.size(); ++j) vals.push_back(c.scalar(kv.second[j], where + "." + key));
    } else {
      vals.push_back(c.scalar(kv.second, where + "." + key));
    }
    axes.emplace_back(key, vals);
  }
  std::sort(axes.begin(), axes.end());
  return axes;
}

std::vector<int> entry_sizes(const Ctx& c, const YAML::Node& e, const std::string& where, const merge::Method& m,
                             const SweepSpec& s) {
  std::vector<int> sizes = s.sizes;
  if (e["sizes"]) sizes = c.int_list(e["sizes"], where + ".sizes", 1, 1 << 20);
  for (int n : sizes) {
    if (n > static_cast<int>(s.checkpoints.size()) && !s.checkpoints.empty())
      c.fail(e, where + ".sizes", "subset size " + std::to_string(n) + " is larger than the number of checkpoints (" +
                                     std::to_string(s.checkpoints.size()) + ")");
    if (m.max_models > 0 && n > m.max_models)
      c.fail(e, where + ".sizes", "method '" + m.name + "' merges at most " + std::to_string(m.max_models) +
                                     " model(s) but subset size " + std::to_string(n) +
                                     " is planned (give this entry its own 'sizes')");
    if (n < m.min_models)
      c.fail(e, where + ".sizes", "method '" + m.name + "' needs at least " + std::to_string(m.min_models) +
                                     " models but subset size " + std::to_string(n) + " is planned");
  }
  return sizes;
}

// One grid point: per-member weight/density apart, the rest validated as method parameters.
MethodPoint grid_point(const Ctx& c, const YAML::Node& e, const std::string& where, const merge::Method& m,
                       const std::vector<int>& sizes, const std::map<std::string, std::string>& values) {
  MethodPoint p;
  p.method = &m;
  p.sizes = sizes;
  p.line = e.Mark().line + 1;
  std::map<std::string, std::string> params;
  for (const auto& [key, v] : values) {
    if (!kMemberKeys.count(key)) {
      params[key] = v;
      continue;
    }
    double x = 0;
    try {
      std::size_t used = 0;
      x = std::stod(v, &used);
      if (used != v.size() || !std::isfinite(x)) throw std::invalid_argument(v);
    } catch (const std::exception&) {
      c.fail(e[key], where + "." + key, "a finite number", "'" + v + "'");
    }
    (key == "weight" ? p.weight : p.density) = x;
    if (key == "density" && !(p.density > 0 && p.density <= 1))
      c.fail(e[key], where + ".density", "a number in (0, 1]", v);
  }
  p.params = merge::validate_params(m.params, params, c.file(), Ctx::line_prefix(e) + where + " (" + m.name + ")");
  p.canonical = p.params.canonical();
  return p;
}

void parse_methods(const Ctx& c, const YAML::Node& list, SweepSpec& s) {
  if (!list || !list.IsSequence() || list.size() == 0)
    c.fail(list, "methods", "a non-empty list of method entries", Ctx::describe(list));
  for (std::size_t i = 0; i < list.size(); ++i) {
    const YAML::Node e = list[i];
    const std::string where = "methods[" + std::to_string(i) + "]";
    const merge::Method& m = method_of_entry(c, e, where);
    const Axes axes = grid_axes(c, e, where);
    const std::vector<int> sizes = entry_sizes(c, e, where, m, s);
    // Cartesian product of the axes, the last axis fastest.
    std::function<void(std::size_t, std::map<std::string, std::string>&)> expand =
        [&](std::size_t k, std::map<std::string, std::string>& cur) {
          if (k == axes.size()) {
            s.methods.push_back(grid_point(c, e, where, m, sizes, cur));
            return;
          }
          for (const auto& v : axes[k].second) {
            cur[axes[k].first] = v;
            expand(k + 1, cur);
          }
          cur.erase(axes[k].first);
        };
    std::map<std::string, std::string> cur;
    expand(0, cur);
  }
}

void parse_eval(const Ctx& c, const YAML::Node& e, const std::string& dir, SweepSpec& s, bool expand) {
  c.check_keys(e, "eval", {"tasks", "probes", "dtype", "batch_tokens", "max_length", "limit"});
  if (e["tasks"]) s.eval.tasks = paths(c, e["tasks"], "eval.tasks", dir, expand);
  if (const YAML::Node p = e["probes"]) {
    c.check_keys(p, "eval.probes", {"packs", "layers", "seeds"});
    if (!p["packs"]) c.fail(p, "eval.probes.packs", "is required (probe pack files or globs)");
    s.eval.probes = paths(c, p["packs"], "eval.probes.packs", dir, expand);
    if (p["layers"] && !(p["layers"].IsScalar() && p["layers"].as<std::string>() == "all"))
      s.eval.layers = c.int_list(p["layers"], "eval.probes.layers", 0, 100000);
    if (p["seeds"]) s.eval.probe_seeds = static_cast<int>(c.integer(p["seeds"], "eval.probes.seeds", 1, 1000));
  }
  if (e["dtype"]) {
    s.eval.dtype = c.scalar(e["dtype"], "eval.dtype");
    if (s.eval.dtype != "float32" && s.eval.dtype != "bfloat16")
      c.fail(e["dtype"], "eval.dtype", "must be float32 or bfloat16, got '" + s.eval.dtype + "'");
  }
  if (e["batch_tokens"]) s.eval.batch_tokens = c.integer(e["batch_tokens"], "eval.batch_tokens", 16, 1LL << 30);
  if (e["max_length"]) s.eval.max_length = c.integer(e["max_length"], "eval.max_length", 0, 1LL << 30);
  if (e["limit"]) s.eval.limit = c.integer(e["limit"], "eval.limit", 0, 1LL << 40);
}

// schedule.device (auto | cpu | cuda) and schedule.memory_per_rank ("40GB", "64GiB", bytes).
void parse_device_and_memory(const Ctx& c, const YAML::Node& sc, Schedule& out) {
  if (sc["device"]) {
    out.device = c.scalar(sc["device"], "schedule.device");
    if (out.device != "auto" && out.device != "cpu" && out.device != "cuda")
      c.fail(sc["device"], "schedule.device", "must be auto, cpu or cuda, got '" + out.device + "'");
  }
  if (sc["memory_per_rank"]) {
    const std::string text = c.scalar(sc["memory_per_rank"], "schedule.memory_per_rank");
    try {
      out.memory_per_rank = parse_byte_size(text, "schedule.memory_per_rank");
    } catch (const Error&) {
      c.fail(sc["memory_per_rank"], "schedule.memory_per_rank", "must be a size like 40GB or 64GiB, got '" + text + "'");
    }
    if (out.memory_per_rank == 0) c.fail(sc["memory_per_rank"], "schedule.memory_per_rank", "must be more than 0 bytes");
  }
}

SweepSpec parse(const std::string& text, const std::string& path, bool expand) {
  const Ctx c(path);
  const YAML::Node doc = c.load_mapping(text, "a sweep spec (a YAML mapping, see docs/formats.md, 'Sweep spec')");
  c.check_keys(doc, "", {"name", "base", "checkpoints", "subsets", "methods", "eval", "output", "schedule", "vocabulary"});
  SweepSpec s;
  s.path = path;
  s.text = text;
  const std::string dir = fs::path(path).parent_path().string();
  for (const char* req : {"base", "checkpoints", "subsets", "methods", "output"})
    if (!doc[req]) c.fail(doc, req, std::string("is required"));
  s.name = doc["name"] ? c.scalar(doc["name"], "name") : fs::path(path).stem().string();
  s.base = model_path(c, doc["base"], "base", dir, c.scalar(doc["base"], "base"), expand);
  parse_checkpoints(c, doc["checkpoints"], dir, expand, s);
  if (doc["vocabulary"]) {
    s.vocabulary = c.scalar(doc["vocabulary"], "vocabulary");
    if (s.vocabulary != "base" && s.vocabulary != "exact")
      c.fail(doc["vocabulary"], "vocabulary", "must be base (align rows to the base's tokens) or exact, got '" +
                                                  s.vocabulary + "'");
  }
  if (expand && !s.shape_only)  // LoRA adapters (and mergekit's model+lora) become folded checkpoints of the base
    for (std::size_t i = 0; i < s.checkpoints.size(); ++i)
      s.checkpoints[i] = io::resolve_checkpoint(s.checkpoints[i], s.base, s.path, s.checkpoint_field(i));
  if (s.checkpoints.empty()) c.fail(doc["checkpoints"], "checkpoints", "lists no checkpoint");
  if (s.checkpoints.size() > 64) c.fail(doc["checkpoints"], "checkpoints", "at most 64 checkpoints are supported");
  const YAML::Node sub = doc["subsets"];
  c.check_keys(sub, "subsets", {"sizes", "samples", "seed"});
  if (!sub["sizes"]) c.fail(sub, "subsets.sizes", "is required");
  s.sizes = c.int_list(sub["sizes"], "subsets.sizes", 1, 1 << 20);
  if (sub["samples"]) s.samples = static_cast<int>(c.integer(sub["samples"], "subsets.samples", 1, 1 << 20));
  if (sub["seed"]) s.seed = static_cast<std::uint64_t>(c.integer(sub["seed"], "subsets.seed", 0, (1LL << 62)));
  parse_methods(c, doc["methods"], s);
  if (doc["eval"]) parse_eval(c, doc["eval"], dir, s, expand);
  s.output = resolve(dir, c.scalar(doc["output"], "output"));
  if (const YAML::Node sc = doc["schedule"]) {
    c.check_keys(sc, "schedule", {"group_size", "threads_per_rank", "progress_interval", "batch_seconds", "peer_timeout", "comm",
                                      "device", "memory_per_rank"});
    if (sc["group_size"]) s.schedule.group_size = static_cast<int>(c.integer(sc["group_size"], "schedule.group_size", 1, 1 << 16));
    if (sc["threads_per_rank"])
      s.schedule.threads_per_rank = static_cast<int>(c.integer(sc["threads_per_rank"], "schedule.threads_per_rank", 1, 1024));
    if (sc["progress_interval"]) s.schedule.progress_interval = c.number(sc["progress_interval"], "schedule.progress_interval", 0.1, 1e6);
    if (sc["batch_seconds"]) s.schedule.batch_seconds = c.number(sc["batch_seconds"], "schedule.batch_seconds", 0, 1e6);
    if (sc["peer_timeout"]) s.schedule.peer_timeout = c.number(sc["peer_timeout"], "schedule.peer_timeout", 1, 1e9);
    if (sc["comm"]) {
      s.schedule.comm = c.scalar(sc["comm"], "schedule.comm");
      if (s.schedule.comm != "auto" && s.schedule.comm != "mpi" && s.schedule.comm != "nccl")
        c.fail(sc["comm"], "schedule.comm", "must be auto, mpi or nccl, got '" + s.schedule.comm + "'");
    }
    parse_device_and_memory(c, sc, s.schedule);
  }
  return s;
}

// The family must pass io::check_family (the one compatibility check) before any work: a
// mismatch is refused naming the checkpoint's file, the tensor, both shapes or dtypes and the
// spec field it came from.
}  // namespace

std::string SweepSpec::checkpoint_field(std::size_t k) const {
  const std::string at = "checkpoints[" + std::to_string(k) + "]";
  return k < checkpoint_names.size() ? at + " (" + checkpoint_names[k] + ")" : at;
}

io::VocabChoice SweepSpec::vocab_choice() const {
  io::VocabChoice c;
  c.source = vocabulary == "exact" ? io::VocabSource::Refuse : io::VocabSource::Base;
  c.keep_base_rows = true;
  return c;
}

namespace {

void check_models(const SweepSpec& s) {
  std::vector<std::string> fields;
  for (std::size_t k = 0; k < s.checkpoints.size(); ++k) fields.push_back(s.checkpoint_field(k));
  try {
    if (!io::is_directory(s.base) || !io::HfModel::open(s.base).config())
      fail(s.path, "base", "'" + s.base + "' is not a model folder with config.json");
    const io::FamilyReport family = io::check_family(s.base, s.checkpoints, fields, s.vocab_choice());
    if (family.unties_head)  // the sweep evaluates merged tensors in the base's architecture
      fail(s.path, "checkpoints",
           "the base ties its head to the input embedding and a checkpoint has its own lm_head: the merged model "
           "would be untied, which the sweep's evaluation in the base's architecture does not hold; merge such a "
           "family with `mergesweep merge` (it writes an untied model)");
  } catch (const Error& e) {
    if (e.file() == s.path) throw;
    fail(s.path, "", e.what());  // the spec first: the user edits the spec or the family
  }
}

}  // namespace

SweepSpec parse_spec(const std::string& text, const std::string& path) { return parse(text, path, false); }

void require_checkpoints_on_disk(const SweepSpec& spec, const std::string& what) {
  if (spec.shape_only)
    fail(spec.path, "checkpoints", "{count: " + std::to_string(spec.checkpoints.size()) +
                                       "} is a shape-only spec: `sweep --plan` sizes the study from the base's "
                                       "config.json, but " + what + " needs the checkpoints (list their folders)");
}

SweepSpec load_spec(const std::string& path) {
  SweepSpec s = parse(io::read_text_file(path), path, true);
  if (s.shape_only) {  // nothing to check but the base's config.json; packs are listed, not read
    if (!io::path_exists(s.base + "/config.json"))
      fail(s.path, "base", "'" + s.base + "' has no config.json (a shape-only spec reads the model's shape from it)");
    return s;
  }
  check_models(s);
  for (const auto& t : s.eval.tasks)
    if (!io::path_exists(t)) fail(s.path, "eval.tasks", "task pack '" + t + "' does not exist");
  for (const auto& t : s.eval.probes)
    if (!io::path_exists(t)) fail(s.path, "eval.probes.packs", "probe pack '" + t + "' does not exist");
  return s;
}

}  // namespace ms::sweep
