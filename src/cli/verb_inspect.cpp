// mergesweep inspect PATH: what a checkpoint holds, and whether it is intact.
#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "mergesweep/cli/verbs.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/core/units.hpp"
#include "mergesweep/io/hf_model.hpp"
#include "mergesweep/io/hub_cache.hpp"
#include "mergesweep/io/integrity.hpp"
#include "options.hpp"

namespace po = boost::program_options;

namespace ms::cli {
namespace {

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string shard_name(const io::SafetensorsFile& f) {
  const auto& p = f.path();
  const auto slash = p.find_last_of('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

nlohmann::ordered_json config_json(const io::ModelConfig& c) {
  nlohmann::ordered_json j;
  j["model_type"] = c.model_type;
  j["architectures"] = c.architectures;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["torch_dtype"] = c.torch_dtype;
  j["rope_scaling"] = nlohmann::json::parse(c.rope_scaling_json);
  return j;
}

void print_json(const io::HfModel& m, const io::IntegrityReport& r, bool list_tensors) {
  nlohmann::ordered_json j;
  j["path"] = m.path();
  j["kind"] = m.is_folder() ? "hf_folder" : "safetensors_file";
  j["sharded"] = m.is_sharded();
  if (m.config()) j["config"] = config_json(*m.config());
  j["num_tensors"] = m.num_tensors();
  j["num_parameters"] = m.total_params();
  j["total_bytes"] = m.total_bytes();
  nlohmann::ordered_json shards = nlohmann::ordered_json::array();
  for (const auto& s : m.shards()) {
    shards.push_back({{"file", shard_name(*s)}, {"bytes", s->file_size()}, {"tensors", s->header().tensors.size()},
                      {"metadata", s->header().metadata}});
  }
  j["shards"] = shards;
  if (list_tensors) {
    nlohmann::ordered_json ts = nlohmann::ordered_json::array();
    for (const auto& name : m.tensor_names()) {
      const auto& e = m.require(name);
      ts.push_back({{"name", name}, {"dtype", io::dtype_name(e.dtype)}, {"shape", e.shape}, {"bytes", e.nbytes()},
                    {"file", shard_name(m.shard_of(name))}});
    }
    j["tensors"] = ts;
  }
  j["integrity"] = {{"ok", r.ok()}, {"problems", r.problems}, {"values_scanned", r.values_scanned}};
  std::cout << j.dump(2) << "\n";
}

void print_text(const io::HfModel& m, const io::IntegrityReport& r, bool list_tensors) {
  std::printf("%s\n", m.path().c_str());
  if (m.is_folder()) {
    std::printf("  format:        HF model folder, %zu safetensors file%s%s\n", m.shards().size(),
                m.shards().size() == 1 ? "" : "s", m.is_sharded() ? " (sharded, with index)" : "");
  } else {
    std::printf("  format:        single safetensors file (no config.json)\n");
  }
  if (m.config()) {
    const auto& c = *m.config();
    std::printf("  architecture:  %s%s%s\n", c.model_type.c_str(), c.architectures.empty() ? "" : " / ",
                c.architectures.empty() ? "" : c.architectures.front().c_str());
    if (c.num_hidden_layers > 0) {
      std::printf("  shape:         %lld layers, hidden %lld, ffn %lld, heads %lld (kv %lld, head_dim %lld), vocab %lld\n",
                  (long long)c.num_hidden_layers, (long long)c.hidden_size, (long long)c.intermediate_size,
                  (long long)c.num_attention_heads, (long long)c.num_key_value_heads, (long long)c.head_dim,
                  (long long)c.vocab_size);
      std::printf("  details:       rms_norm_eps %g, rope_theta %g, max_positions %lld, tied embeddings %s, dtype %s\n",
                  c.rms_norm_eps, c.rope_theta, (long long)c.max_position_embeddings, c.tie_word_embeddings ? "yes" : "no",
                  c.torch_dtype.empty() ? "(unset)" : c.torch_dtype.c_str());
    }
  }
  std::map<std::string, std::pair<std::size_t, std::uint64_t>> by_dtype;
  for (const auto& name : m.tensor_names()) {
    const auto& e = m.require(name);
    auto& slot = by_dtype[io::dtype_name(e.dtype)];
    slot.first += 1;
    slot.second += e.nbytes();
  }
  std::printf("  tensors:       %zu, %s parameters, %s\n", m.num_tensors(), format_count(m.total_params()).c_str(),
              format_bytes(m.total_bytes()).c_str());
  for (const auto& [dt, v] : by_dtype) {
    std::printf("    %-8s %6zu tensors  %s\n", dt.c_str(), v.first, format_bytes(v.second).c_str());
  }
  if (list_tensors) {
    std::size_t width = 4;
    for (const auto& name : m.tensor_names()) width = std::max(width, name.size());
    std::printf("\n  %-*s  %-7s  %-20s  %12s  %s\n", (int)width, "name", "dtype", "shape", "bytes", "file");
    for (const auto& name : m.tensor_names()) {
      const auto& e = m.require(name);
      std::printf("  %-*s  %-7s  %-20s  %12llu  %s\n", (int)width, name.c_str(), io::dtype_name(e.dtype),
                  shape_text(e.shape).c_str(), (unsigned long long)e.nbytes(), shard_name(m.shard_of(name)).c_str());
    }
    std::printf("\n");
  }
  if (r.ok()) {
    std::printf("  integrity:     ok (headers, offsets%s%s)\n", m.is_sharded() ? ", index" : "",
                r.values_scanned ? (", " + format_count(r.values_scanned) + " values finite").c_str() : "");
  } else {
    std::printf("  integrity:     %zu problem%s\n", r.problems.size(), r.problems.size() == 1 ? "" : "s");
    for (const auto& p : r.problems) std::printf("    - %s\n", p.c_str());
  }
}

}  // namespace

int run_inspect(int argc, char** argv) {
  po::options_description opts(
      "usage: mergesweep inspect PATH [options]\n\n"
      "Describes a safetensors file or a Hugging Face model folder (config.json plus model.safetensors\n"
      "or shards with model.safetensors.index.json): architecture, every tensor's name, dtype, shape\n"
      "and bytes, totals and parameter count. Every header is validated (offsets, sizes, dtypes,\n"
      "duplicates), the index is checked against the shards, and config.json against the tensors.\n"
      "Exit status 1 when anything is malformed or inconsistent.\n\noptions");
  opts.add_options()
      ("help,h", "show this help")
      ("json", "print one JSON document instead of text")
      ("summary", "leave out the per-tensor list")
      ("check-values", "also read every float tensor and report NaN/Inf values (reads all data)");
  po::variables_map vm;
  if (!parse_command_line(argc, argv, opts,
                          {{"path", 1, po::value<std::string>(), "missing PATH (a .safetensors file or a model folder)"}},
                          vm))
    return kExitOk;
  const auto model = io::HfModel::open(io::resolve_model_path(vm["path"].as<std::string>(), "", "PATH"));
  const auto report = io::check_integrity(model, vm.count("check-values") > 0);
  if (vm.count("json")) print_json(model, report, !vm.count("summary"));
  else print_text(model, report, !vm.count("summary"));
  if (!report.ok()) {
    std::fprintf(stderr, "mergesweep: error: %s\n", report.problems.front().c_str());
    return kExitError;
  }
  return kExitOk;
}

}  // namespace ms::cli
