// `mergesweep eval A B C --tasks ...`: several models scored on the same packs, compared with the
// first. A table of every model's scores (a mean row over the multiple-choice tasks), then each
// model's paired difference to the first per task and on the mean, with a paired percentile
// bootstrap interval over the items and an exact McNemar p per task (eval/paired.hpp; the same
// definitions as analysis/paired.py). The per-item outcomes are the ones the evaluator produces
// for the archive's item tables (eval::TaskResult::items). docs/eval.md, "Comparing models".
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mergesweep/eval/evaluate.hpp"
#include "mergesweep/eval/paired.hpp"

namespace ms::cli {

struct ComparedModel {
  std::string name;  // as given on the command line (the tables' column)
  std::string path;  // the folder evaluated
  eval::EvalResult res;
  nlohmann::ordered_json json;  // this model's "model", "max_length" and "results" (one-model layout)
};

// Refuses packs a comparison cannot score alike: generate_until (scored afterwards, by
// python3 -m analysis score).
void check_comparable_packs(const std::vector<eval::TaskPack>& packs);

// Refuses models whose tokenizer.json name some token id differently from the first model's: the
// packs hold token ids, so the models would score different texts. Models without a
// tokenizer.json are not checked (as one-model eval does not check them).
void check_shared_tokenizer(const std::vector<std::string>& paths, const std::vector<std::string>& names);

// Prints the score table and the paired table; adds "paired" (the rows, the bootstrap's
// settings) and "items" (every model's 0/1 outcomes per task and metric) to `j`.
void report_comparison(const std::vector<eval::TaskPack>& packs, const std::vector<ComparedModel>& models,
                       const eval::BootstrapOptions& bootstrap, bool all_metrics, nlohmann::ordered_json& j);

}  // namespace ms::cli
