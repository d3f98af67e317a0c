// What one evaluation contributes to a config's archive rows, by task output type:
// multiple_choice → its tally's metrics as /results rows and every item's outcome as /items
// rows; loglikelihood_rolling → its rolling metrics (word_perplexity, byte_perplexity,
// bits_per_byte) as /results rows, n = documents, and every document as an /item_docs row;
// generate_until → one /generations row per item and no /results rows (`python3 -m analysis
// score` adds them later); probes → /probes rows.
#pragma once

#include <cstdint>
#include <string>

#include "mergesweep/archive/archive.hpp"
#include "mergesweep/eval/evaluate.hpp"
#include "mergesweep/eval/task_pack.hpp"

namespace ms::sweep {

// The archive's /generations/stop value: "until", "stop_token", "length".
std::string stop_name(eval::Generation::Stop s);

// Appends the rows of `ev` to `r` (results, items, generations, probes), all for config `config_id`.
void add_eval_rows(std::uint64_t config_id, const eval::EvalResult& ev, int probe_seeds, archive::ConfigResult& r);

}  // namespace ms::sweep
