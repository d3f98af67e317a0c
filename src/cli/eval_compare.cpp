#include "eval_compare.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <limits>
#include <optional>

#include "mergesweep/core/error.hpp"
#include "mergesweep/eval/aggregate.hpp"
#include "mergesweep/io/fs_util.hpp"
#include "mergesweep/io/vocabulary.hpp"
#include "text_table.hpp"

namespace ms::cli {
namespace {

// lm-eval's 0/1 multiple-choice metrics and their bits in eval::ItemOutcome::correct.
struct BitMetric {
  const char* name;
  std::uint8_t bit;
  bool by_default;  // in the tables without --all-metrics (as one-model eval)
};
constexpr BitMetric kMetrics[] = {{"acc", eval::ItemOutcome::kAcc, true},
                                  {"acc_norm", eval::ItemOutcome::kAccNorm, true},
                                  {"acc_bytes", eval::ItemOutcome::kAccBytes, false},
                                  {"exact_match", eval::ItemOutcome::kExactMatch, false}};
constexpr std::size_t kNumMetrics = sizeof kMetrics / sizeof kMetrics[0];

bool multiple_choice(const eval::TaskResult& t) { return t.output_type == eval::OutputType::MultipleChoice; }

std::vector<std::uint8_t> outcome_bits(const eval::TaskResult& t, std::uint8_t bit) {
  std::vector<std::uint8_t> out;
  out.reserve(t.items.size());
  for (const auto& o : t.items) out.push_back((o.correct & bit) != 0);
  return out;
}

double mean_of(const std::vector<std::uint8_t>& bits) {
  std::int64_t k = 0;
  for (auto b : bits) k += b;
  return eval::count_mean(k, static_cast<std::int64_t>(bits.size()));
}

std::string signed_fixed(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%+.4f", v);
  return buf;
}

std::string p_text(double p) {
  char buf[64];
  std::snprintf(buf, sizeof buf, p >= 1e-4 ? "%.4f" : "%.2e", p);
  return buf;
}

// One paired statistic: a model against the first on one task (or the mean over tasks) and metric.
struct PairedRow {
  std::size_t model = 0, metric = 0;
  std::string task;  // "mean": over the multiple-choice tasks
  std::int64_t items = 0;
  double diff = 0;
  eval::Interval ci;
  std::optional<eval::McNemar> mcnemar;  // per task only
};

// Every model m >= 1 against model 0 on every multiple-choice task and every metric, then the
// mean over those tasks, all on the same resampled items (per task).
std::vector<PairedRow> paired_rows(const std::vector<eval::TaskPack>& packs, const std::vector<ComparedModel>& models,
                                   const eval::BootstrapOptions& o) {
  const std::size_t comparisons = (models.size() - 1) * kNumMetrics;  // series s = (m - 1) * kNumMetrics + metric
  std::vector<PairedRow> rows;
  std::vector<std::vector<double>> theta_sum(comparisons, std::vector<double>(static_cast<std::size_t>(o.resamples)));
  std::vector<double> diff_sum(comparisons);
  std::size_t tasks = 0;
  for (std::size_t k = 0; k < packs.size(); ++k) {
    if (!multiple_choice(models[0].res.tasks[k])) continue;
    ++tasks;
    std::vector<std::vector<double>> series;
    std::vector<PairedRow> task_rows;
    for (std::size_t m = 1; m < models.size(); ++m)
      for (std::size_t q = 0; q < kNumMetrics; ++q) {
        const auto a = outcome_bits(models[0].res.tasks[k], kMetrics[q].bit);
        const auto b = outcome_bits(models[m].res.tasks[k], kMetrics[q].bit);
        std::vector<double> d(a.size());
        double sum = 0;
        for (std::size_t i = 0; i < a.size(); ++i) sum += d[i] = static_cast<double>(b[i]) - static_cast<double>(a[i]);
        series.push_back(std::move(d));
        PairedRow r{m,
                    q,
                    packs[k].name,
                    static_cast<std::int64_t>(a.size()),
                    sum / static_cast<double>(a.size()),
                    {},
                    eval::mcnemar_exact(b, a)};
        task_rows.push_back(std::move(r));
      }
    const auto theta = eval::resample_means(series, packs[k].name, o);
    for (std::size_t s = 0; s < comparisons; ++s) {
      task_rows[s].ci = eval::percentile_interval(theta[s], o.level);
      diff_sum[s] += task_rows[s].diff;
      for (std::size_t r = 0; r < theta[s].size(); ++r) theta_sum[s][r] += theta[s][r];
    }
    rows.insert(rows.end(), task_rows.begin(), task_rows.end());
  }
  if (tasks == 0) return rows;
  for (std::size_t s = 0; s < comparisons; ++s) {
    for (double& t : theta_sum[s]) t /= static_cast<double>(tasks);
    PairedRow r{1 + s / kNumMetrics,
                s % kNumMetrics,
                "mean",
                0,
                diff_sum[s] / static_cast<double>(tasks),
                eval::percentile_interval(theta_sum[s], o.level),
                std::nullopt};
    for (const auto& x : rows) r.items += x.model == r.model && x.metric == r.metric ? x.items : 0;
    rows.push_back(std::move(r));
  }
  // Grouped by model: its tasks in pack order, then the mean.
  std::stable_sort(rows.begin(), rows.end(), [](const PairedRow& x, const PairedRow& y) { return x.model < y.model; });
  return rows;
}

// The score table: every task and metric, one column per model, then the mean row per metric
// over the multiple-choice tasks.
void print_scores(const std::vector<eval::TaskPack>& packs, const std::vector<ComparedModel>& models,
                  bool all_metrics) {
  std::vector<std::string> head{"Tasks", "n", "Metric"};
  std::vector<bool> right{false, true, false};
  for (const auto& m : models) head.push_back(m.name), right.push_back(true);
  std::vector<std::vector<std::string>> rows;
  std::vector<std::vector<double>> sums(kNumMetrics, std::vector<double>(models.size()));
  std::size_t tasks = 0;
  for (std::size_t k = 0; k < packs.size(); ++k) {
    const auto& t0 = models[0].res.tasks[k];
    const bool mc = multiple_choice(t0);
    tasks += mc;
    const auto n = mc ? t0.items.size() : t0.doc_loglik.size();
    const auto names = mc ? std::vector<eval::Metric>{} : t0.rolling_metrics;
    const std::size_t count = mc ? kNumMetrics : names.size();
    bool first = true;
    for (std::size_t q = 0; q < count; ++q) {
      if (mc && !all_metrics && !kMetrics[q].by_default) continue;
      std::vector<std::string> row{first ? packs[k].name : "", first ? std::to_string(n) : "",
                                   mc ? kMetrics[q].name : names[q].name};
      for (std::size_t m = 0; m < models.size(); ++m) {
        const auto& t = models[m].res.tasks[k];
        const double v = mc ? mean_of(outcome_bits(t, kMetrics[q].bit)) : t.rolling_metrics[q].value;
        if (mc) sums[q][m] += v;
        row.push_back(fixed(v));
      }
      rows.push_back(std::move(row));
      first = false;
    }
  }
  bool first = true;
  for (std::size_t q = 0; q < kNumMetrics && tasks > 0; ++q) {
    if (!all_metrics && !kMetrics[q].by_default) continue;
    std::vector<std::string> row{
        first ? "mean" : "", first ? std::to_string(tasks) + (tasks == 1 ? " task" : " tasks") : "", kMetrics[q].name};
    for (std::size_t m = 0; m < models.size(); ++m) row.push_back(fixed(sums[q][m] / static_cast<double>(tasks)));
    rows.push_back(std::move(row));
    first = false;
  }
  std::cout << table(head, right, rows);
}

void print_paired(const std::vector<PairedRow>& rows, const std::vector<ComparedModel>& models,
                  const eval::BootstrapOptions& o, bool all_metrics) {
  const std::string& ref = models[0].name;
  if (rows.empty()) {
    std::cout << "\nNo multiple_choice task: no paired differences to " << ref << ".\n";
    return;
  }
  char ci_head[32];
  std::snprintf(ci_head, sizeof ci_head, "%g%% CI", 100 * o.level);
  std::cout << "\nPaired differences to " << ref << " (model minus " << ref << "): " << ci_head
            << " of a paired percentile bootstrap over the items (" << o.resamples << " resamples, seed " << o.seed
            << "); exact McNemar p per task, not adjusted for multiple comparisons\n";
  std::vector<std::vector<std::string>> out;
  std::size_t last_model = 0;
  for (const auto& r : rows) {
    if (!all_metrics && !kMetrics[r.metric].by_default) continue;
    const bool new_model = r.model != last_model;
    last_model = r.model;
    out.push_back({new_model ? models[r.model].name : "", r.task, kMetrics[r.metric].name, signed_fixed(r.diff),
                   "[" + signed_fixed(r.ci.lo) + ", " + signed_fixed(r.ci.hi) + "]",
                   r.mcnemar ? std::to_string(r.mcnemar->only_a) : "",
                   r.mcnemar ? std::to_string(r.mcnemar->only_b) : "", r.mcnemar ? p_text(r.mcnemar->p) : ""});
  }
  std::cout << table({"Model", "Tasks", "Metric", "Diff", ci_head, "Only model", "Only first", "McNemar p"},
                     {false, false, false, true, true, true, true, true}, out);
}

}  // namespace

void check_comparable_packs(const std::vector<eval::TaskPack>& packs) {
  for (const auto& pack : packs)
    if (pack.output_type == eval::OutputType::GenerateUntil)
      fail(pack.path, "--tasks",
           "a generate_until pack: several models are compared on multiple_choice and loglikelihood_rolling packs; "
           "generate with each model on its own and score with python3 -m analysis score");
}

void check_shared_tokenizer(const std::vector<std::string>& paths, const std::vector<std::string>& names) {
  const std::string first = paths[0] + "/tokenizer.json";
  if (!io::path_exists(first)) return;
  const std::string first_text = io::read_text_file(first);
  const std::int64_t all = std::numeric_limits<std::int64_t>::max();
  std::optional<io::TokenizerVocab> v0;
  for (std::size_t m = 1; m < paths.size(); ++m) {
    const std::string file = paths[m] + "/tokenizer.json";
    if (!io::path_exists(file) || io::read_text_file(file) == first_text) continue;
    if (!v0) v0 = io::read_tokenizer_vocab(paths[0], all, all);
    const io::TokenizerVocab v = io::read_tokenizer_vocab(paths[m], all, all);
    for (std::size_t id = 0; id < std::min(v.token.size(), v0->token.size()); ++id)
      if (v.token[id] != v0->token[id])
        fail(file, "MODEL " + std::to_string(m + 1) + " (" + names[m] + ")",
             "token id " + std::to_string(id) + " is '" + v.token[id] + "' here but '" + v0->token[id] +
                 "' in the first model's " + first +
                 "; the packs hold token ids, so compared models must share a "
                 "tokenizer");
  }
}

void report_comparison(const std::vector<eval::TaskPack>& packs, const std::vector<ComparedModel>& models,
                       const eval::BootstrapOptions& o, bool all_metrics, nlohmann::ordered_json& j) {
  print_scores(packs, models, all_metrics);
  const auto rows = paired_rows(packs, models, o);
  print_paired(rows, models, o, all_metrics);
  nlohmann::ordered_json p;
  p["reference"] = models[0].name;
  p["method"] = "paired percentile bootstrap over items (analysis/paired.py), exact McNemar per task";
  p["resamples"] = o.resamples;
  p["seed"] = o.seed;
  p["level"] = o.level;
  p["rows"] = nlohmann::ordered_json::array();
  for (const auto& r : rows) {
    nlohmann::ordered_json x = {{"model", models[r.model].name},
                                {"task", r.task},
                                {"metric", kMetrics[r.metric].name},
                                {"items", r.items},
                                {"diff", r.diff},
                                {"ci_low", r.ci.lo},
                                {"ci_high", r.ci.hi}};
    if (r.mcnemar) {
      x["only_model"] = r.mcnemar->only_a;
      x["only_reference"] = r.mcnemar->only_b;
      x["mcnemar_p"] = r.mcnemar->p;
    }
    p["rows"].push_back(std::move(x));
  }
  j["paired"] = std::move(p);
  nlohmann::ordered_json items = nlohmann::ordered_json::object();
  for (std::size_t k = 0; k < packs.size(); ++k) {
    if (!multiple_choice(models[0].res.tasks[k])) continue;
    nlohmann::ordered_json t;
    for (const auto& metric : kMetrics) {
      t[metric.name] = nlohmann::ordered_json::array();
      for (const auto& m : models) t[metric.name].push_back(outcome_bits(m.res.tasks[k], metric.bit));
    }
    items[packs[k].name] = std::move(t);
  }
  j["items"] = std::move(items);
}

}  // namespace ms::cli
