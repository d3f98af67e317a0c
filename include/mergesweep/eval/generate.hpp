// Greedy generation for generate_until task packs, with the semantics of lm-eval's HF backend
// (docs/eval.md, "Generation (generate_until)"): the prompt cut to its last
// max_length - max_gen_toks tokens, greedy argmax decoding until a stop token, an `until` string
// in the decoded text, or max_gen_toks tokens; the response is the decoded text cut before the
// first `until` string. Items are decoded in fixed blocks (generation_blocks: a pure function of
// the pack and the options), all rows of a block in one forward per step against one KV cache.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mergesweep/eval/evaluate.hpp"
#include "mergesweep/eval/scoring.hpp"
#include "mergesweep/eval/task_pack.hpp"

namespace ms::model { class Decoder; }

namespace ms::eval {

// Fixed generation blocks: item indices, longest (truncated) prompt first, each block at most
// `batch_tokens` padded tokens (rows × (its longest prompt + max_gen_toks)), at least one item.
// A pure function of the pack, the model's max_length and the options.
std::vector<std::vector<std::size_t>> generation_blocks(const TaskPack& pack, std::int64_t max_length,
                                                        const ScoreOptions& opts);

// The max_length generation runs with (the option, else max_position_embeddings, as lm-eval's
// HF backend), after checking the pack against the model: a generate_until pack, the same
// vocabulary size as the model, a byte table covering it, max_length > max_gen_toks.
std::int64_t check_generation_pack(const TaskPack& pack, const model::Decoder& model, const ScoreOptions& opts);

// The ids that end a sequence: the pack's stop_token_ids and the model's config.json
// eos_token_id (what HF generate stops on when there is no generation_config.json), sorted.
std::vector<std::int32_t> stop_token_set(const TaskPack& pack, const model::Decoder& model);

// Greedy generations of the pack's items `items` decoded together (normally one block), in that
// order. Every row's result depends only on its own item, up to float rounding (the rows share
// matrix products).
std::vector<Generation> generate_items(const model::Decoder& model, const TaskPack& pack,
                                       const std::vector<std::size_t>& items, const ScoreOptions& opts);

// lm-eval's response from generated ids: their bytes concatenated, decoded as UTF-8 with
// invalid sequences replaced by U+FFFD (as Python's errors="replace"), one leading space
// stripped when the spec says so, then `for term in until: s = s.split(term)[0]`.
std::string generation_text(const GenerationSpec& spec, const std::vector<std::int32_t>& tokens);
// The decoded text before any cut (the first two steps above).
std::string decoded_text(const GenerationSpec& spec, const std::vector<std::int32_t>& tokens);
// UTF-8 decoding with replacement of maximal invalid subparts by U+FFFD (Python, Rust's
// from_utf8_lossy): always valid UTF-8.
std::string utf8_lossy(const std::string& bytes);

const char* stop_name(Generation::Stop s);  // "until", "stop_token", "length"

}  // namespace ms::eval
