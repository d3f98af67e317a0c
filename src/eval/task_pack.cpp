// Task pack files (HDF5): flat token arrays with offsets, so a pack of any size is a handful of
// datasets. Layout in docs/formats.md, "Task packs" (format_version 1: multiple choice) and "Task
// packs, format_version 2" (output_type, per-choice contexts, rolling windows, generation).
// Structure checks live in task_pack_checks.cpp.
#include "mergesweep/eval/task_pack.hpp"

#include <algorithm>
#include <cstdio>
#include <limits>

#include "mergesweep/core/error.hpp"
#include "mergesweep/io/fs_util.hpp"
#include "pack_checks.hpp"
#include "pack_file.hpp"

namespace ms::eval {
namespace {

constexpr const char* kFormat = "mergesweep-task-pack";
constexpr std::int64_t kFormatVersion = 2;  // version 1 (multiple choice only) is read too

OutputType parse_output_type(const std::string& s, const std::string& path) {
  for (OutputType t : {OutputType::MultipleChoice, OutputType::LoglikelihoodRolling, OutputType::GenerateUntil})
    if (s == output_type_name(t)) return t;
  fail(path, "attribute output_type",
       "expected multiple_choice, loglikelihood_rolling or generate_until, found '" + s + "'");
}

// The root attributes after format and format_version.
void read_task_attributes(const h5::Handle& f, const std::string& path, std::int64_t version, TaskPack& pack) {
  pack.name = h5::read_string_attr(f, "name", path);
  pack.source_task = h5::read_string_attr(f, "source_task", path);
  pack.task_version = h5::read_string_attr(f, "task_version", path);
  pack.tokenizer = h5::read_string_attr(f, "tokenizer", path);
  const std::int64_t fewshot = h5::read_int_attr(f, "num_fewshot", path);
  if (fewshot < 0 || fewshot > std::numeric_limits<std::int32_t>::max())
    fail(path, "attribute num_fewshot", "must be in [0, 2^31-1], found " + std::to_string(fewshot));
  pack.num_fewshot = static_cast<std::int32_t>(fewshot);
  pack.vocab_size = h5::read_int_attr(f, "vocab_size", path);
  if (version >= 2) pack.output_type = parse_output_type(h5::read_string_attr(f, "output_type", path), path);
}

// Items, choices, contexts (shared or per choice) and gold: the datasets every output type has.
void read_items(const h5::Handle& f, const std::string& path, TaskPack& pack) {
  const auto gold = h5::read_i32(f, "gold", path);
  const auto chars = h5::read_i64(f, "choice_chars", path);
  const auto bytes = h5::read_i64(f, "choice_bytes", path);
  const std::size_t n_items = gold.size(), n_choices = chars.size();
  const auto context = detail::read_ragged_i32(f, "context_tokens", "context_offsets", n_items, path, "item");
  const auto choice_off = detail::read_offsets(f, "choice_offsets", n_items, n_choices, path, "item");
  const auto cont = detail::read_ragged_i32(f, "continuation_tokens", "continuation_offsets", n_choices, path, "choice");
  if (bytes.size() != n_choices)
    fail(path, "choice_bytes", "has " + std::to_string(bytes.size()) + " entries, expected one per choice (" +
                                   std::to_string(n_choices) + ", the length of choice_chars)");
  detail::Ragged<std::int32_t> choice_ctx;
  const bool per_choice = h5::has_dataset(f, "choice_context_offsets");
  if (per_choice)
    choice_ctx = detail::read_ragged_i32(f, "choice_context_tokens", "choice_context_offsets", n_choices, path, "choice");
  pack.items.resize(n_items);
  for (std::size_t i = 0; i < n_items; ++i) {
    TaskItem& it = pack.items[i];
    it.gold = gold[i];
    it.context = context.row(i);
    for (auto c = static_cast<std::size_t>(choice_off[i]); c < static_cast<std::size_t>(choice_off[i + 1]); ++c)
      it.choices.push_back(Choice{cont.row(c), chars[c], bytes[c], per_choice ? choice_ctx.row(c) : std::vector<std::int32_t>{}});
  }
}

void read_rolling(const h5::Handle& f, const std::string& path, TaskPack& pack) {
  pack.rolling_max_length = h5::read_int_attr(f, "max_length", path);
  const auto item_doc = h5::read_i64(f, "item_doc", path);
  const auto words = h5::read_i64(f, "doc_words", path);
  const auto bytes = h5::read_i64(f, "doc_bytes", path);
  if (item_doc.size() != pack.items.size())
    fail(path, "item_doc", "has " + std::to_string(item_doc.size()) + " entries, expected one per item (" +
                               std::to_string(pack.items.size()) + ")");
  if (bytes.size() != words.size())
    fail(path, "doc_bytes", "has " + std::to_string(bytes.size()) + " entries, expected one per document (" +
                                std::to_string(words.size()) + ", the length of doc_words)");
  for (std::size_t i = 0; i < item_doc.size(); ++i) pack.items[i].doc = item_doc[i];
  for (std::size_t d = 0; d < words.size(); ++d) pack.docs.push_back(RollingDoc{words[d], bytes[d]});
}

void read_generation(const h5::Handle& f, const std::string& path, TaskPack& pack) {
  GenerationSpec& g = pack.generation;
  g.max_gen_toks = h5::read_int_attr(f, "max_gen_toks", path);
  g.strip_leading_space = h5::read_int_attr(f, "strip_leading_space", path) != 0;
  g.until = h5::read_strings(f, "until", path);
  g.stop_token_ids = h5::read_i32(f, "stop_token_ids", path);
  const std::size_t n_offsets = h5::read_i64(f, "token_bytes_offsets", path).size();
  if (n_offsets == 0) fail(path, "token_bytes_offsets", "empty, expected vocab_size + 1 entries");
  g.token_bytes = detail::read_ragged_bytes(f, "token_bytes", "token_bytes_offsets", n_offsets - 1, path, "token id");
  // Optional: SentencePiece byte-fallback flags (their decoding differs) and lm-eval's doc ids.
  if (h5::has_dataset(f, "token_is_byte")) {
    g.token_is_byte = h5::read_u8(f, "token_is_byte", path);
    if (g.token_is_byte.size() != g.token_bytes.size())
      fail(path, "token_is_byte", "has " + std::to_string(g.token_is_byte.size()) + " entries, expected one per token id (" +
                                      std::to_string(g.token_bytes.size()) + ")");
  }
  if (h5::has_dataset(f, "target")) g.targets = h5::read_strings(f, "target", path);
  if (h5::has_attr(f, "native_metric")) {
    const std::string m = h5::read_string_attr(f, "native_metric", path);
    if (m != "exact_match") fail(path, "attribute native_metric", "expected exact_match, found '" + m + "'");
    g.native_exact_match = true;
  }
  if (h5::has_dataset(f, "doc_id")) {
    g.doc_ids = h5::read_i64(f, "doc_id", path);
    if (g.doc_ids.size() != pack.items.size())
      fail(path, "doc_id", "has " + std::to_string(g.doc_ids.size()) + " entries, expected one per item (" +
                               std::to_string(pack.items.size()) + ")");
  }
}

void write_items(const h5::Handle& f, const std::string& path, const TaskPack& pack) {
  const bool per_choice = uses_choice_contexts(pack);
  std::vector<std::int32_t> gold;
  detail::Ragged<std::int32_t> context, cont, choice_ctx;
  std::vector<std::int64_t> choice_off{0}, chars, bytes;
  for (const TaskItem& it : pack.items) {
    gold.push_back(it.gold);
    context.push_row(it.context);
    for (const Choice& ch : it.choices) {
      cont.push_row(ch.continuation);
      choice_ctx.push_row(ch.context);
      chars.push_back(ch.chars);
      bytes.push_back(ch.bytes);
    }
    choice_off.push_back(static_cast<std::int64_t>(chars.size()));
  }
  h5::write_i32(f, "gold", gold, path);
  detail::write_ragged_i32(f, "context_tokens", "context_offsets", context, path);
  h5::write_i64(f, "choice_offsets", choice_off, path);
  detail::write_ragged_i32(f, "continuation_tokens", "continuation_offsets", cont, path);
  if (per_choice) detail::write_ragged_i32(f, "choice_context_tokens", "choice_context_offsets", choice_ctx, path);
  h5::write_i64(f, "choice_chars", chars, path);
  h5::write_i64(f, "choice_bytes", bytes, path);
}

void write_kind_specific(const h5::Handle& f, const std::string& path, const TaskPack& pack) {
  if (pack.output_type == OutputType::LoglikelihoodRolling) {
    std::vector<std::int64_t> item_doc, words, bytes;
    for (const TaskItem& it : pack.items) item_doc.push_back(it.doc);
    for (const RollingDoc& d : pack.docs) {
      words.push_back(d.words);
      bytes.push_back(d.bytes);
    }
    h5::write_int_attr(f, "max_length", pack.rolling_max_length, path);
    h5::write_i64(f, "item_doc", item_doc, path);
    h5::write_i64(f, "doc_words", words, path);
    h5::write_i64(f, "doc_bytes", bytes, path);
  } else if (pack.output_type == OutputType::GenerateUntil) {
    const GenerationSpec& g = pack.generation;
    h5::write_int_attr(f, "max_gen_toks", g.max_gen_toks, path);
    h5::write_int_attr(f, "strip_leading_space", g.strip_leading_space ? 1 : 0, path);
    h5::write_strings(f, "until", g.until, path);
    h5::write_i32(f, "stop_token_ids", g.stop_token_ids, path);
    detail::write_ragged_bytes(f, "token_bytes", "token_bytes_offsets", g.token_bytes, path);
    if (!g.token_is_byte.empty()) h5::write_u8(f, "token_is_byte", g.token_is_byte, path);
    if (!g.doc_ids.empty()) h5::write_i64(f, "doc_id", g.doc_ids, path);
    if (!g.targets.empty()) h5::write_strings(f, "target", g.targets, path);
    if (g.native_exact_match) h5::write_string_attr(f, "native_metric", "exact_match", path);
  }
}

}  // namespace

const char* output_type_name(OutputType t) {
  switch (t) {
    case OutputType::MultipleChoice:
      return "multiple_choice";
    case OutputType::LoglikelihoodRolling:
      return "loglikelihood_rolling";
    case OutputType::GenerateUntil:
      return "generate_until";
  }
  return "?";
}

void limit_task_pack(TaskPack& pack, std::int64_t limit) {
  if (limit <= 0) return;
  std::size_t keep = std::min(pack.items.size(), static_cast<std::size_t>(limit));
  if (pack.output_type == OutputType::LoglikelihoodRolling) {
    // Items are in document order (item_doc never decreases): the windows of documents < limit.
    if (static_cast<std::int64_t>(pack.docs.size()) > limit) pack.docs.resize(static_cast<std::size_t>(limit));
    keep = 0;
    while (keep < pack.items.size() && pack.items[keep].doc < limit) ++keep;
  }
  pack.items.resize(keep);
  GenerationSpec& g = pack.generation;  // per-item columns of generation packs follow the items
  if (g.doc_ids.size() > keep) g.doc_ids.resize(keep);
  if (g.targets.size() > keep) g.targets.resize(keep);
}

TaskPack read_task_pack(const std::string& path) {
  std::int64_t version = 0;
  h5::Handle f = detail::open_pack(path, kFormat, 1, kFormatVersion, &version);
  TaskPack pack;
  pack.path = path;
  read_task_attributes(f, path, version, pack);
  read_items(f, path, pack);
  if (pack.output_type == OutputType::LoglikelihoodRolling) read_rolling(f, path, pack);
  if (pack.output_type == OutputType::GenerateUntil) read_generation(f, path, pack);
  f.close();
  validate_task_pack(pack, path);
  return pack;
}

void write_task_pack(const std::string& path, const TaskPack& pack) {
  validate_task_pack(pack, path);
  detail::write_pack(path, kFormat, kFormatVersion, [&](const h5::Handle& f) {
    h5::write_string_attr(f, "name", pack.name, path);
    h5::write_string_attr(f, "source_task", pack.source_task, path);
    h5::write_string_attr(f, "task_version", pack.task_version, path);
    h5::write_string_attr(f, "tokenizer", pack.tokenizer, path);
    h5::write_int_attr(f, "num_fewshot", pack.num_fewshot, path);
    h5::write_int_attr(f, "vocab_size", pack.vocab_size, path);
    h5::write_string_attr(f, "output_type", output_type_name(pack.output_type), path);
    write_items(f, path, pack);
    write_kind_specific(f, path, pack);
  });
}

}  // namespace ms::eval
