// mergesweep eval MODEL --tasks PACK...: multiple-choice scores with lm-eval's semantics and,
// optionally, Holmes-style probes of the hidden states. Prints an lm-eval-style table.
// mergesweep eval A B C --tasks PACK...: each model in turn, then the comparison with the first
// (eval_compare.cpp).
#include <ATen/ATen.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <memory>
#include <sstream>

#include "eval_compare.hpp"
#include "eval_generations.hpp"
#include "mergesweep/cli/verbs.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/core/gpu_binding.hpp"
#include "mergesweep/core/version.hpp"
#include "mergesweep/eval/evaluate.hpp"
#include "mergesweep/eval/generate.hpp"
#include "mergesweep/io/fs_util.hpp"
#include "mergesweep/io/lora_adapter.hpp"
#include "mergesweep/model/decoder.hpp"
#include "mergesweep/model/device.hpp"
#include "options.hpp"
#include "text_table.hpp"

namespace po = boost::program_options;

namespace ms::cli {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::vector<int> parse_layers(const std::string& text, int num_layers) {
  std::vector<int> out;
  if (text == "all") return out;  // empty = every layer
  if (text == "last") return {num_layers};
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, ',')) {
    std::size_t used = 0;
    int v = -1;
    try {
      v = std::stoi(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != part.size() || part.empty() || v < 0 || v > num_layers)
      fail("", "--layers", "'" + part + "' is not a layer in 0.." + std::to_string(num_layers) +
                               "; expected all, last or a comma-separated list such as 0,3,5");
    out.push_back(v);
  }
  if (out.empty()) fail("", "--layers", "empty list");
  return out;
}

struct EvalCli {
  std::vector<std::string> model_args, model_paths;  // as given; resolved folders
  std::string layers_text = "all", dtype_text = "float32", json_out, device_text = "auto", generations_out;
  std::vector<std::string> tasks, probes;
  std::int64_t batch_tokens = 8192, limit = 0, max_length = 0;
  int seeds = 5;
  bool all_metrics = false, quiet = false, per_item = false, probes_one_by_one = false;
  at::ScalarType dtype = at::kFloat;
  eval::BootstrapOptions bootstrap;  // several models: the paired intervals
};

constexpr const char* kEvalUsage =
    "usage: mergesweep eval MODEL --tasks PACK... [--probes PACK...] [options]\n"
    "       mergesweep eval MODEL MODEL... --tasks PACK... [options]\n\n"
    "Scores a Hugging Face model folder (llama, mistral, qwen2, qwen3) on task packs with lm-eval's\n"
    "log-likelihood multiple-choice semantics: each choice's continuation log-likelihood summed over\n"
    "its tokens, input (context + continuation)[-(max_length+1):][:-1]; acc = argmax is gold,\n"
    "acc_norm = argmax of loglik / code points of the choice, acc_bytes = per UTF-8 byte,\n"
    "exact_match = the gold continuation is the greedy one; stderr = sample std / sqrt(n). Items\n"
    "are scored in fixed blocks of --batch-tokens; inside a block every shared prefix (a few-shot\n"
    "header, an item's context) runs once and many items share each forward. Choices with their own\n"
    "contexts (winogrande) are scored on them. loglikelihood_rolling packs (perplexity): lm-eval's\n"
    "windows summed per document; word_perplexity, byte_perplexity, bits_per_byte (--limit counts\n"
    "documents; --max-length must be the pack's).\n"
    "generate_until packs: greedy decoding as lm-eval's HF backend (prompt cut to its last\n"
    "max_length - max_gen_toks tokens; stop at a stop token, an `until` string or max_gen_toks),\n"
    "in fixed blocks of --batch-tokens; the table shows n and generated tokens/s, --json and\n"
    "--generations hold every item's text, token ids and stop reason (scored afterwards by\n"
    "python3 -m analysis score).\n"
    "Probe packs: sentences mean-pooled at each layer, a linear probe per (layer, seed), all trained\n"
    "as one batch, test macro-F1 mean and std over the seeds. Packs: docs/formats.md; semantics:\n"
    "docs/eval.md. Threads: OMP_NUM_THREADS (ATen) and OPENBLAS_NUM_THREADS (BLAS) override the\n"
    "default split (docs/model.md).\n"
    "Several models: each is scored in turn on the same packs (they must share the tokenizer), then\n"
    "a table of every model's scores with a mean row over the multiple-choice tasks, and each\n"
    "model's paired difference to the first: a percentile bootstrap interval over the same\n"
    "resampled items (--resamples, --bootstrap-seed; analysis/paired.py's definition) and an exact\n"
    "McNemar p per task; --json adds every item's outcomes (docs/eval.md, \"Comparing models\").\n\n"
    "options";

// Parses and checks the command line; false when --help was printed.
bool parse_eval_cli(int argc, char** argv, EvalCli& c) {
  po::options_description opts(kEvalUsage);
  opts.add_options()
      ("help,h", "show this help")
      ("tasks,t", po::value(&c.tasks)->multitoken(), "task packs (.h5), one or more")
      ("probes,p", po::value(&c.probes)->multitoken(), "probe packs (.h5), zero or more")
      ("layers", po::value(&c.layers_text)->default_value(c.layers_text),
       "probe layers: all, last, or a list such as 0,3,5 (0 = embeddings, L = final norm)")
      ("seeds", po::value(&c.seeds)->default_value(c.seeds), "probe seeds 0..N-1 per layer (Holmes: 5)")
      ("dtype", po::value(&c.dtype_text)->default_value(c.dtype_text), "compute dtype: float32 or bfloat16")
      ("device", po::value(&c.device_text)->default_value(c.device_text),
       "auto (cuda when a GPU is visible), cpu or cuda; a rank uses GPU local_rank % visible GPUs")
      ("batch-tokens", po::value(&c.batch_tokens)->default_value(c.batch_tokens),
       "tokens per scoring block and per forward batch")
      ("max-length", po::value(&c.max_length)->default_value(c.max_length),
       "truncation length (0 = the model's max_position_embeddings, as lm-eval)")
      ("limit", po::value(&c.limit)->default_value(c.limit), "score only the first N items of each task (0 = all)")
      ("json", po::value(&c.json_out), "also write the results as JSON to this file")
      ("generations", po::value(&c.generations_out),
       "write every generate_until item's generation to this JSON Lines file")
      ("all-metrics", "table shows acc_bytes and exact_match too (JSON always has every metric)")
      ("per-item", "score one item per forward (the reference path; slower, same numbers up to rounding)")
      ("probes-one-by-one", "train each (layer, seed) probe on its own (the reference path)")
      ("resamples", po::value(&c.bootstrap.resamples)->default_value(c.bootstrap.resamples),
       "several models: bootstrap resamples of the paired intervals")
      ("bootstrap-seed", po::value(&c.bootstrap.seed)->default_value(c.bootstrap.seed),
       "several models: seed of the bootstrap's draws (printed with the table)")
      ("quiet,q", "no progress on stderr");
  po::variables_map vm;
  if (!parse_command_line(argc, argv, opts,
                          {{"model", -1, po::value(&c.model_args)->multitoken(),
                            "expected MODEL (a Hugging Face model folder)"}},
                          vm))
    return false;
  // A folder, a hub name from the local cache, or a LoRA adapter folded onto the base it names.
  for (std::size_t m = 0; m < c.model_args.size(); ++m)
    c.model_paths.push_back(io::resolve_checkpoint(
        c.model_args[m], "", "", c.model_args.size() == 1 ? "MODEL" : "MODEL " + std::to_string(m + 1)));
  c.all_metrics = vm.count("all-metrics") > 0;
  c.quiet = vm.count("quiet") > 0;
  c.per_item = vm.count("per-item") > 0;
  c.probes_one_by_one = vm.count("probes-one-by-one") > 0;
  if (c.tasks.empty() && c.probes.empty()) throw po::error("expected --tasks PACK... and/or --probes PACK...");
  if (c.batch_tokens <= 0) fail("", "--batch-tokens", "must be positive, found " + std::to_string(c.batch_tokens));
  if (c.limit < 0) fail("", "--limit", "must be >= 0, found " + std::to_string(c.limit));
  if (c.max_length < 0) fail("", "--max-length", "must be >= 0, found " + std::to_string(c.max_length));
  if (c.seeds <= 0) fail("", "--seeds", "must be positive, found " + std::to_string(c.seeds));
  if (c.bootstrap.resamples <= 0)
    fail("", "--resamples", "must be positive, found " + std::to_string(c.bootstrap.resamples));
  if (c.model_paths.size() > 1) {  // what a comparison cannot hold
    if (!c.probes.empty()) fail("", "--probes", "compares several models on --tasks only; probe each model on its own");
    if (!c.generations_out.empty())
      fail("", "--generations", "compares several models on --tasks only; generate with each model on its own");
  }
  if (c.dtype_text == "float32") c.dtype = at::kFloat;
  else if (c.dtype_text == "bfloat16") c.dtype = at::kBFloat16;
  else fail("", "--dtype", "'" + c.dtype_text + "' is not float32 or bfloat16");
  // Fail before hours of scoring, not after: the output folders must exist.
  for (const auto& [out, flag] : {std::pair{c.json_out, "--json"}, std::pair{c.generations_out, "--generations"}}) {
    if (out.empty()) continue;
    const auto slash = out.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : out.substr(0, slash + 1);
    if (!io::is_directory(dir)) fail(out, flag, "folder '" + dir + "' does not exist");
  }
  return true;
}

nlohmann::ordered_json stderr_json(double v) {
  return std::isnan(v) ? nlohmann::ordered_json("N/A") : nlohmann::ordered_json(v);
}

// The rows of the task table (lm-eval's layout); fills the JSON "results".
std::vector<std::vector<std::string>> task_rows(const EvalCli& c, const std::vector<eval::TaskPack>& packs,
                                                const eval::EvalResult& res, nlohmann::ordered_json& j) {
  std::vector<std::vector<std::string>> rows;
  j["results"] = nlohmann::ordered_json::object();
  for (std::size_t k = 0; k < res.tasks.size(); ++k) {
    const eval::TaskPack& pack = packs[k];
    const eval::TaskResult& t = res.tasks[k];
    nlohmann::ordered_json r;
    r["source_task"] = pack.source_task;
    r["version"] = pack.task_version;
    r["num_fewshot"] = pack.num_fewshot;
    r["tokenizer"] = pack.tokenizer;
    r["pack"] = pack.path;
    const bool rolling = t.output_type == eval::OutputType::LoglikelihoodRolling;
    r["output_type"] = eval::output_type_name(t.output_type);
    r["n"] = rolling ? static_cast<std::int64_t>(t.doc_loglik.size()) : t.tally.n;  // lm-eval: documents
    if (rolling) r["windows"] = pack.items.size();
    if (t.output_type == eval::OutputType::GenerateUntil) {
      // Generations are scored afterwards (python3 -m analysis score): here n and the speed.
      const double per_s = static_cast<double>(t.tokens) / std::max(t.seconds, 1e-9);
      r["generated_tokens"] = t.tokens;
      r["generated_tokens_per_s"] = per_s;
      r["seconds"] = t.seconds;
      r["generations"] = generations_json(t);
      rows.push_back({pack.name, pack.task_version, "none", std::to_string(pack.num_fewshot), "n",
                      std::to_string(t.tally.n), "", ""});
      rows.push_back({"", "", "", "", "gen_tokens/s", fixed(per_s, 1), "", ""});
      for (const auto& m : t.generation_metrics) {  // the pack's native exact_match, if any
        r[m.name] = m.value;
        r[m.name + "_stderr"] = stderr_json(m.stderr_);
        rows.push_back({"", "", "none", "", m.name, fixed(m.value), "±", fixed(m.stderr_)});
      }
      j["results"][pack.name] = r;
      continue;
    }
    bool first = true;
    for (const auto& m : rolling ? t.rolling_metrics : t.tally.metrics()) {
      r[m.name] = m.value;
      r[m.name + "_stderr"] = stderr_json(m.stderr_);
      if (!c.all_metrics && (m.name == "acc_bytes" || m.name == "exact_match")) continue;
      rows.push_back({first ? pack.name : "", first ? pack.task_version : "", "none", std::to_string(pack.num_fewshot),
                      m.name, fixed(m.value), "±", fixed(m.stderr_)});
      first = false;
    }
    r["seconds"] = t.seconds;
    r["tokens"] = t.tokens;
    j["results"][pack.name] = r;
  }
  return rows;
}

// The task table and the JSON "results".
void report_tasks(const EvalCli& c, const std::vector<eval::TaskPack>& packs, const eval::EvalResult& res,
                  nlohmann::ordered_json& j) {
  const auto rows = task_rows(c, packs, res, j);
  if (!rows.empty())
    std::cout << table({"Tasks", "Version", "Filter", "n-shot", "Metric", "Value", "", "Stderr"},
                       {false, true, false, true, false, true, false, true}, rows);
}

// The probe table and the JSON "probes".
void report_probes(const EvalCli& c, const std::vector<eval::ProbePack>& packs, const eval::EvalResult& res,
                   nlohmann::ordered_json& j) {
  if (res.probes.empty()) return;
  std::vector<std::vector<std::string>> rows;
  j["probes"] = nlohmann::ordered_json::object();
  for (std::size_t k = 0; k < res.probes.size(); ++k) {
    const eval::ProbeResult& p = res.probes[k];
    nlohmann::ordered_json pj;
    pj["label_names"] = packs[k].label_names;
    pj["n"] = packs[k].sentences.size();
    pj["layers"] = nlohmann::ordered_json::object();
    for (std::size_t li = 0; li < p.layers.size(); ++li) {
      const eval::ProbeLayerResult& l = p.layers[li];
      pj["layers"][std::to_string(l.layer)] = {
          {"macro_f1_mean", l.mean}, {"macro_f1_std", stderr_json(l.std)}, {"macro_f1", l.macro_f1}};
      rows.push_back({li == 0 ? p.name : "", std::to_string(l.layer), "macro_f1", fixed(l.mean), "±", fixed(l.std),
                      std::to_string(c.seeds)});
    }
    pj["seconds"] = p.seconds;
    j["probes"][p.name] = pj;
  }
  if (!res.tasks.empty()) std::cout << "\n";
  std::cout << table({"Probe", "Layer", "Metric", "Value", "", "Std", "Seeds"},
                     {false, true, false, true, false, true, true}, rows);
}

// Progress on stderr: a rewritten line on a terminal, a line every 5 s otherwise.
eval::EvalProgress progress_printer(bool quiet) {
  if (quiet) return {};
  const bool tty = ::isatty(STDERR_FILENO);
  auto last = std::make_shared<double>(-1e9);
  return [tty, last](const eval::TaskResult& t, std::size_t done, std::size_t items) {
    const bool end = done == items;
    if (!end && t.seconds - *last < (tty ? 0.5 : 5.0)) return;
    *last = end ? -1e9 : t.seconds;
    const char* what = t.output_type == eval::OutputType::GenerateUntil ? "generated tokens/s" : "tokens/s";
    std::fprintf(stderr, tty ? "\r%s: %zu/%zu items, %.0f %s   %s" : "%s: %zu/%zu items, %.0f %s\n%s",
                 t.name.c_str(), done, items, static_cast<double>(t.tokens) / std::max(t.seconds, 1e-9), what,
                 tty && end ? "\n" : "");
  };
}

struct ModelRun {
  eval::EvalResult res;
  std::int64_t max_length = 0;  // the truncation length used
};

// Loads one model, checks the packs against it and evaluates it.
ModelRun evaluate_model(const EvalCli& c, const std::string& path, const c10::Device& device,
                        const std::vector<eval::TaskPack>& task_packs,
                        const std::vector<eval::ProbePack>& probe_packs) {
  const auto t_load = Clock::now();
  const auto model = model::Decoder::load(path, c.dtype, device);
  eval::EvalOptions eo;
  eo.layers = parse_layers(c.layers_text, static_cast<int>(model->config().num_hidden_layers));
  eo.probe_seeds = c.seeds;
  eo.score.batch_tokens = c.batch_tokens;
  eo.score.max_length = c.max_length;
  eo.score.packed = !c.per_item;
  eo.batched_probes = !c.probes_one_by_one;
  for (const auto& pack : task_packs) {
    eval::check_pack_vocab(pack, model->config().vocab_size);
    if (pack.output_type == eval::OutputType::GenerateUntil) eval::check_generation_pack(pack, *model, eo.score);
  }
  if (!c.quiet)
    std::fprintf(stderr, "mergesweep eval: loaded %s (%s, %s) in %.2f s\n", path.c_str(), c.dtype_text.c_str(),
                 device.str().c_str(), seconds_since(t_load));
  ModelRun run;
  run.res = eval::evaluate(*model, task_packs, probe_packs, eo, {}, progress_printer(c.quiet));
  run.max_length = c.max_length ? c.max_length : model->config().max_position_embeddings;
  return run;
}

// The settings every output records, after `j`'s leading keys.
void add_settings(const EvalCli& c, const c10::Device& device, nlohmann::ordered_json& j) {
  j["dtype"] = c.dtype_text;
  j["device"] = device.str();
  j["mergesweep_version"] = std::string(kVersion) + " (" + kGitRevision + ")";
  j["batch_tokens"] = c.batch_tokens;
}

// Several models: each evaluated in turn (one in memory at a time), then compared with the first.
int run_comparison(const EvalCli& c, const std::vector<eval::TaskPack>& task_packs, const c10::Device& device) {
  std::vector<ComparedModel> models;
  for (std::size_t m = 0; m < c.model_paths.size(); ++m) {
    ModelRun run = evaluate_model(c, c.model_paths[m], device, task_packs, {});
    ComparedModel cm{c.model_args[m], c.model_paths[m], std::move(run.res), {}};
    cm.json["model"] = c.model_paths[m];
    cm.json["max_length"] = run.max_length;
    task_rows(c, task_packs, cm.res, cm.json);  // the one-model JSON "results"; the tables are the comparison's
    models.push_back(std::move(cm));
  }
  nlohmann::ordered_json j;
  j["models"] = nlohmann::ordered_json::array();
  for (const auto& m : models) j["models"].push_back(m.json);
  add_settings(c, device, j);
  j["limit"] = c.limit;
  report_comparison(task_packs, models, c.bootstrap, c.all_metrics, j);
  if (!c.json_out.empty()) io::write_text_file(c.json_out, j.dump(2) + "\n");
  return kExitOk;
}

}  // namespace

int run_eval(int argc, char** argv) {
  EvalCli c;
  if (!parse_eval_cli(argc, argv, c)) return kExitOk;
  // Packs first: a bad pack fails before the model is read.
  std::vector<eval::TaskPack> task_packs;
  for (const auto& t : c.tasks) {
    task_packs.push_back(eval::read_task_pack(t));
    eval::limit_task_pack(task_packs.back(), c.limit);
  }
  std::vector<eval::ProbePack> probe_packs;
  for (const auto& p : c.probes) probe_packs.push_back(eval::read_probe_pack(p));
  if (c.model_paths.size() > 1) {  // refusals before any model is read
    check_comparable_packs(task_packs);
    check_shared_tokenizer(c.model_paths, c.model_args);
  }
  const c10::Device device = model::resolve_device(c.device_text, node_slot().rank, "", "--device");
  if (c.model_paths.size() > 1) return run_comparison(c, task_packs, device);

  const ModelRun run = evaluate_model(c, c.model_paths[0], device, task_packs, probe_packs);
  nlohmann::ordered_json j;
  j["model"] = c.model_paths[0];
  add_settings(c, device, j);
  j["max_length"] = run.max_length;
  j["limit"] = c.limit;
  report_tasks(c, task_packs, run.res, j);
  report_probes(c, probe_packs, run.res, j);
  if (!c.json_out.empty()) io::write_text_file(c.json_out, j.dump(2) + "\n");
  if (!c.generations_out.empty()) write_generations_jsonl(c.generations_out, task_packs, run.res);
  return kExitOk;
}

}  // namespace ms::cli
