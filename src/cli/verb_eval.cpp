// mergesweep eval MODEL --tasks PACK...: multiple-choice scores with lm-eval's semantics and,
// optionally, Holmes-style probes of the hidden states. Prints an lm-eval-style table.
#include <ATen/ATen.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "mergesweep/cli/verbs.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/core/version.hpp"
#include "mergesweep/eval/probes.hpp"
#include "mergesweep/eval/scoring.hpp"
#include "mergesweep/io/fs_util.hpp"
#include "mergesweep/model/decoder.hpp"

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

std::string fixed(double v, int digits = 4) {
  if (std::isnan(v)) return "N/A";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// Width on a terminal: UTF-8 code points (continuation bytes 10xxxxxx do not count).
std::size_t width(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// A markdown table as lm-eval prints it (columns padded to their widest cell).
std::string table(const std::vector<std::string>& head, const std::vector<bool>& right,
                  const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> w(head.size());
  for (std::size_t c = 0; c < head.size(); ++c) {
    w[c] = std::max<std::size_t>(width(head[c]), 1);
    for (const auto& r : rows) w[c] = std::max(w[c], width(r[c]));
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s = "|";
    for (std::size_t c = 0; c < cells.size(); ++c) {
      const std::string pad(w[c] - width(cells[c]), ' ');
      s += right[c] ? pad + cells[c] : cells[c] + pad;
      s += "|";
    }
    return s + "\n";
  };
  std::string out = line(head);
  out += "|";
  for (std::size_t c = 0; c < head.size(); ++c) out += std::string(w[c] - (right[c] ? 1 : 0), '-') + (right[c] ? ":" : "") + "|";
  out += "\n";
  for (const auto& r : rows) out += line(r);
  return out;
}

}  // namespace

int run_eval(int argc, char** argv) {
  std::string model_path, layers_text = "all", dtype_text = "float32", json_out;
  std::vector<std::string> tasks, probes;
  std::int64_t batch_tokens = 8192, limit = 0, max_length = 0;
  int seeds = 5;
  po::options_description opts(
      "usage: mergesweep eval MODEL --tasks PACK... [--probes PACK...] [options]\n\n"
      "Scores a Hugging Face model folder (llama, mistral, qwen2, qwen3) on task packs with lm-eval's\n"
      "log-likelihood multiple-choice semantics: each choice's continuation log-likelihood summed over\n"
      "its tokens, input (context + continuation)[-(max_length+1):][:-1]; acc = argmax is gold,\n"
      "acc_norm = argmax of loglik / code points of the choice, acc_bytes = per UTF-8 byte,\n"
      "exact_match = the gold continuation is the greedy one; stderr = sample std / sqrt(n). Each\n"
      "item's context runs once for all its choices (KV cache); results do not depend on batching.\n"
      "Probe packs: sentences mean-pooled at each layer, a linear probe per (layer, seed), test\n"
      "macro-F1 mean and std over the seeds. Packs: docs/formats.md; semantics: docs/eval.md.\n\n"
      "options");
  opts.add_options()
      ("help,h", "show this help")
      ("tasks,t", po::value(&tasks)->multitoken(), "task packs (.h5), one or more")
      ("probes,p", po::value(&probes)->multitoken(), "probe packs (.h5), zero or more")
      ("layers", po::value(&layers_text)->default_value(layers_text),
       "probe layers: all, last, or a list such as 0,3,5 (0 = embeddings, L = final norm)")
      ("seeds", po::value(&seeds)->default_value(seeds), "probe seeds 0..N-1 per layer (Holmes: 5)")
      ("dtype", po::value(&dtype_text)->default_value(dtype_text), "compute dtype: float32 or bfloat16")
      ("batch-tokens", po::value(&batch_tokens)->default_value(batch_tokens),
       "tokens per scoring block and per probe forward batch")
      ("max-length", po::value(&max_length)->default_value(max_length),
       "truncation length (0 = the model's max_position_embeddings, as lm-eval)")
      ("limit", po::value(&limit)->default_value(limit), "score only the first N items of each task (0 = all)")
      ("json", po::value(&json_out), "also write the results as JSON to this file")
      ("all-metrics", "table shows acc_bytes and exact_match too (JSON always has every metric)")
      ("quiet,q", "no progress on stderr");
  po::options_description hidden;
  hidden.add_options()("model", po::value(&model_path));
  po::options_description all;
  all.add(opts).add(hidden);
  po::positional_options_description pos;
  pos.add("model", 1);
  po::variables_map vm;
  po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << opts << "\n";
    return kExitOk;
  }
  if (model_path.empty()) throw po::error("expected MODEL (a Hugging Face model folder)");
  if (tasks.empty() && probes.empty()) throw po::error("expected --tasks PACK... and/or --probes PACK...");
  if (batch_tokens <= 0) fail("", "--batch-tokens", "must be positive, found " + std::to_string(batch_tokens));
  if (limit < 0) fail("", "--limit", "must be >= 0, found " + std::to_string(limit));
  if (max_length < 0) fail("", "--max-length", "must be >= 0, found " + std::to_string(max_length));
  if (seeds <= 0) fail("", "--seeds", "must be positive, found " + std::to_string(seeds));
  at::ScalarType dtype;
  if (dtype_text == "float32") {
    dtype = at::kFloat;
  } else if (dtype_text == "bfloat16") {
    dtype = at::kBFloat16;
  } else {
    fail("", "--dtype", "'" + dtype_text + "' is not float32 or bfloat16");
  }
  if (!json_out.empty()) {
    // Fail before hours of scoring, not after: the JSON's folder must exist.
    const auto slash = json_out.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : json_out.substr(0, slash + 1);
    if (!io::is_directory(dir)) fail(json_out, "--json", "folder '" + dir + "' does not exist");
  }
  const bool quiet = vm.count("quiet") > 0;
  const bool tty = ::isatty(STDERR_FILENO);

  // Packs first: a bad pack fails before the model is read.
  std::vector<eval::TaskPack> task_packs;
  for (const auto& t : tasks) {
    task_packs.push_back(eval::read_task_pack(t));
    if (limit > 0 && static_cast<std::int64_t>(task_packs.back().items.size()) > limit)
      task_packs.back().items.resize(static_cast<std::size_t>(limit));
  }
  std::vector<eval::ProbePack> probe_packs;
  for (const auto& p : probes) probe_packs.push_back(eval::read_probe_pack(p));

  const auto t_load = Clock::now();
  const auto model = model::Decoder::load(model_path, dtype);
  const int num_layers = static_cast<int>(model->config().num_hidden_layers);
  const std::vector<int> layers = parse_layers(layers_text, num_layers);
  for (const auto& pack : task_packs) eval::check_pack_vocab(pack, model->config().vocab_size);
  if (!quiet) std::fprintf(stderr, "mergesweep eval: loaded %s (%s) in %.2f s\n", model_path.c_str(), dtype_text.c_str(), seconds_since(t_load));

  nlohmann::ordered_json j;
  j["model"] = model_path;
  j["dtype"] = dtype_text;
  j["mergesweep_version"] = std::string(kVersion) + " (" + kGitRevision + ")";
  j["batch_tokens"] = batch_tokens;
  j["max_length"] = max_length ? max_length : model->config().max_position_embeddings;
  j["limit"] = limit;
  j["results"] = nlohmann::ordered_json::object();
  std::vector<std::vector<std::string>> rows;
  const bool all_metrics = vm.count("all-metrics") > 0;

  eval::ScoreOptions so;
  so.batch_tokens = batch_tokens;
  so.max_length = max_length;
  for (const auto& pack : task_packs) {
    const auto t0 = Clock::now();
    const auto blocks = eval::scoring_blocks(pack, so);
    eval::TaskTally tally;
    std::int64_t tokens = 0;
    double last = 0;
    for (std::size_t bi = 0; bi < blocks.size(); ++bi) {
      const auto [b, e] = blocks[bi];
      const auto scores = eval::score_items(*model, pack, b, e, so);
      for (std::size_t i = b; i < e; ++i) {
        tally.add(pack.items[i], scores[i - b]);
        tokens += static_cast<std::int64_t>(pack.items[i].context.size());
        for (const auto& ch : pack.items[i].choices) tokens += static_cast<std::int64_t>(ch.continuation.size());
      }
      const double s = seconds_since(t0);
      if (!quiet && (bi + 1 == blocks.size() || s - last >= (tty ? 0.5 : 5.0))) {
        last = s;
        std::fprintf(stderr, tty ? "\r%s: %zu/%zu items, %.0f tokens/s   " : "%s: %zu/%zu items, %.0f tokens/s\n",
                     pack.name.c_str(), e, pack.items.size(), tokens / std::max(s, 1e-9));
      }
    }
    if (!quiet && tty) std::fprintf(stderr, "\n");
    nlohmann::ordered_json r;
    r["source_task"] = pack.source_task;
    r["version"] = pack.task_version;
    r["num_fewshot"] = pack.num_fewshot;
    r["tokenizer"] = pack.tokenizer;
    r["pack"] = pack.path;
    r["n"] = tally.n;
    bool first = true;
    for (const auto& m : tally.metrics()) {
      r[m.name] = m.value;
      r[m.name + "_stderr"] = std::isnan(m.stderr_) ? nlohmann::ordered_json("N/A") : nlohmann::ordered_json(m.stderr_);
      if (!all_metrics && (m.name == "acc_bytes" || m.name == "exact_match")) continue;
      rows.push_back({first ? pack.name : "", first ? pack.task_version : "", "none",
                      std::to_string(pack.num_fewshot), m.name, fixed(m.value), "±", fixed(m.stderr_)});
      first = false;
    }
    r["seconds"] = seconds_since(t0);
    r["tokens"] = tokens;
    j["results"][pack.name] = r;
  }
  if (!rows.empty())
    std::cout << table({"Tasks", "Version", "Filter", "n-shot", "Metric", "Value", "", "Stderr"},
                       {false, true, false, true, false, true, false, true}, rows);

  if (!probe_packs.empty()) {
    j["probes"] = nlohmann::ordered_json::object();
    std::vector<std::vector<std::string>> prow;
    const eval::ProbeOptions po_;
    for (const auto& pack : probe_packs) {
      const auto t0 = Clock::now();
      const at::Tensor feats = eval::pooled_features(*model, pack, layers, batch_tokens);
      std::vector<int> used = layers;
      if (used.empty())
        for (int l = 0; l <= num_layers; ++l) used.push_back(l);
      nlohmann::ordered_json pj;
      pj["label_names"] = pack.label_names;
      pj["n"] = pack.sentences.size();
      pj["layers"] = nlohmann::ordered_json::object();
      for (std::size_t li = 0; li < used.size(); ++li) {
        std::vector<double> f1;
        for (int s = 0; s < seeds; ++s) f1.push_back(eval::train_probe(feats[static_cast<std::int64_t>(li)], pack, s, po_));
        double mean = 0;
        for (double v : f1) mean += v;
        mean /= static_cast<double>(f1.size());
        double ss = 0;
        for (double v : f1) ss += (v - mean) * (v - mean);
        const double sd = f1.size() > 1 ? std::sqrt(ss / static_cast<double>(f1.size() - 1)) : std::nan("");
        pj["layers"][std::to_string(used[li])] = {{"macro_f1_mean", mean},
                                                   {"macro_f1_std", std::isnan(sd) ? nlohmann::json("N/A") : nlohmann::json(sd)},
                                                   {"macro_f1", f1}};
        prow.push_back({li == 0 ? pack.name : "", std::to_string(used[li]), "macro_f1", fixed(mean), "±", fixed(sd),
                        std::to_string(seeds)});
        if (!quiet)
          std::fprintf(stderr, tty ? "\r%s: layer %d done (%zu/%zu), %.1f s   " : "%s: layer %d done (%zu/%zu), %.1f s\n",
                       pack.name.c_str(), used[li], li + 1, used.size(), seconds_since(t0));
      }
      if (!quiet && tty) std::fprintf(stderr, "\n");
      pj["seconds"] = seconds_since(t0);
      j["probes"][pack.name] = pj;
    }
    if (!rows.empty()) std::cout << "\n";
    std::cout << table({"Probe", "Layer", "Metric", "Value", "", "Std", "Seeds"},
                       {false, true, false, true, false, true, true}, prow);
  }
  if (!json_out.empty()) io::write_text_file(json_out, j.dump(2) + "\n");
  return kExitOk;
}

}  // namespace ms::cli
