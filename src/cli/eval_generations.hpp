// `mergesweep eval` output for generate_until tasks: each item's generation as JSON (the --json
// "generations" list and the --generations JSON Lines file).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "mergesweep/eval/evaluate.hpp"

namespace ms::cli {

// One object per item, in pack order: {"text", "tokens", "stop"}.
nlohmann::ordered_json generations_json(const eval::TaskResult& t);

// One JSON object per line and item of every generate_until task:
// {"task", "item", "doc_id" (when the pack has them), "text", "tokens", "stop"}.
void write_generations_jsonl(const std::string& path, const std::vector<eval::TaskPack>& packs,
                             const eval::EvalResult& res);

}  // namespace ms::cli
