// Task packs: pre-tokenized lm-eval requests exactly as lm-eval builds them (HDF5 file, format in
// docs/formats.md "Task packs"). Three output types: multiple_choice (also with one context per
// choice, lm-eval's multiple_input form such as winogrande), loglikelihood_rolling (perplexity:
// lm-eval's rolling windows, one item per window) and generate_until (greedy generation).
// Made by analysis/export_lmeval_task.py or by the testbed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ms::eval {

// lm-eval's output_type of the source task.
enum class OutputType { MultipleChoice, LoglikelihoodRolling, GenerateUntil };
const char* output_type_name(OutputType t);  // "multiple_choice", ...

struct Choice {
  std::vector<std::int32_t> continuation;  // lm-eval's continuation tokens for this choice
  std::int64_t chars = 0;                   // Unicode code points of the choice text (acc_norm)
  std::int64_t bytes = 0;                   // UTF-8 bytes of the choice text (acc_bytes)
  // Per-choice context (lm-eval's multiple_input form: doc_to_choice gives one context per choice
  // and every choice shares one continuation). Empty: the item's shared context is used.
  std::vector<std::int32_t> context;
};

struct TaskItem {
  // lm-eval's context tokens shared by every choice (empty when every choice has its own);
  // for generate_until, the prompt (not yet truncated: that depends on the model's max_length).
  std::vector<std::int32_t> context;
  std::vector<Choice> choices;  // generate_until: none; loglikelihood_rolling: exactly one
  std::int32_t gold = 0;
  std::int64_t doc = 0;  // loglikelihood_rolling: the document this window belongs to
};

// loglikelihood_rolling: what lm-eval's perplexity metrics weigh a document by.
struct RollingDoc {
  std::int64_t words = 0;  // len(re.split(r"\s+", text)) as lm-eval's _count_words
  std::int64_t bytes = 0;  // UTF-8 bytes of the document text
};

// generate_until: what greedy decoding needs, as lm-eval's HF backend would decode.
struct GenerationSpec {
  std::int64_t max_gen_toks = 0;           // > 0
  std::vector<std::string> until;          // stop strings (UTF-8, non-empty), checked on decoded bytes
  std::vector<std::int32_t> stop_token_ids;  // ids that end a sequence (EOS), not part of the text
  // token_bytes[id]: the bytes the HF tokenizer decodes id to (skip_special_tokens: special
  // tokens decode to nothing). One entry per id < vocab_size.
  std::vector<std::string> token_bytes;
  // SentencePiece decoders strip one leading space of the whole decoded text (Llama 2, Mistral).
  bool strip_leading_space = false;
  // Optional (dataset token_is_byte; empty = none): 1 for SentencePiece byte-fallback tokens
  // (<0xNN>). A run of them that is not valid UTF-8 decodes to one U+FFFD per token, as the
  // tokenizers ByteFallback decoder does (other bytes: one U+FFFD per maximal invalid subpart).
  std::vector<std::uint8_t> token_is_byte;
  // Optional (dataset doc_id; empty = none): lm-eval's doc_id of each item, for reports.
  std::vector<std::int64_t> doc_ids;
  // Optional (dataset target; empty = none): each item's reference answer, for people, and for
  // the engine's own exact_match when `native_exact_match` is set.
  std::vector<std::string> targets;
  // Attribute native_metric = "exact_match": the engine scores exact_match itself (response ==
  // target, byte for byte; lm-eval's exact_match without flags or filters). Set for packs that
  // have no lm-eval task to score them (the testbed's); lm-eval packs leave it to analysis score.
  bool native_exact_match = false;
};

struct TaskPack {
  std::string name;             // task name as reported in results
  std::string source_task;      // e.g. "arc_easy" or "testbed/arith"
  std::string task_version;
  std::string tokenizer;        // tokenizer name or path the ids belong to
  std::int32_t num_fewshot = 0;
  std::int64_t vocab_size = 0;  // every id must be < this (checked against the model as well)
  OutputType output_type = OutputType::MultipleChoice;
  std::vector<TaskItem> items;
  std::vector<RollingDoc> docs;  // loglikelihood_rolling only: items' `doc` index into this
  std::int64_t rolling_max_length = 0;  // loglikelihood_rolling: the window length the exporter used
  GenerationSpec generation;     // generate_until only
  std::string path;             // file it was read from
};

// True when the pack's choices carry their own contexts (lm-eval's multiple_input form).
bool uses_choice_contexts(const TaskPack& pack);
// --limit / eval.limit: the first `limit` items (0: all). For loglikelihood_rolling the limit
// counts documents, as lm-eval's --limit does: the windows of the first `limit` documents.
void limit_task_pack(TaskPack& pack, std::int64_t limit);
// Validates structure and ids; errors name the file, the field and the item.
TaskPack read_task_pack(const std::string& path);
// Writes to a temporary name, then renames.
void write_task_pack(const std::string& path, const TaskPack& pack);

}  // namespace ms::eval
