// Task pack files (HDF5): flat token arrays with offsets, so a pack of any size is a handful of
// datasets. Layout (format_version 1) in docs/formats.md, section "Task packs".
#include "mergesweep/eval/task_pack.hpp"

#include <cstdio>
#include <limits>

#include "mergesweep/core/error.hpp"
#include "mergesweep/io/fs_util.hpp"
#include "pack_checks.hpp"
#include "pack_file.hpp"

namespace ms::eval {
namespace {

constexpr const char* kFormat = "mergesweep-task-pack";
constexpr std::int64_t kFormatVersion = 1;

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

void validate_task_pack(const TaskPack& pack, const std::string& path) {
  if (pack.vocab_size <= 0 || pack.vocab_size > std::numeric_limits<std::int32_t>::max())
    fail(path, "attribute vocab_size", "must be in [1, 2^31-1], found " + std::to_string(pack.vocab_size));
  if (pack.num_fewshot < 0) fail(path, "attribute num_fewshot", "must be >= 0, found " + std::to_string(pack.num_fewshot));
  if (pack.items.empty()) fail(path, "gold", "the pack has no items");
  for (std::size_t i = 0; i < pack.items.size(); ++i) {
    const TaskItem& it = pack.items[i];
    const std::string at = "item " + std::to_string(i);
    if (it.context.empty())
      fail(path, "context_tokens", at + ": empty context (lm-eval scores an empty context as [BOS]; export it so)");
    detail::check_ids(it.context, pack.vocab_size, path, "context_tokens", at);
    if (it.choices.empty()) fail(path, "choice_offsets", at + ": empty choices (every item needs at least one choice)");
    if (it.gold < 0 || static_cast<std::size_t>(it.gold) >= it.choices.size())
      fail(path, "gold", at + ": gold " + std::to_string(it.gold) + " is not a choice index in [0, " +
                             std::to_string(it.choices.size()) + ")");
    for (std::size_t c = 0; c < it.choices.size(); ++c) {
      const Choice& ch = it.choices[c];
      const std::string atc = at + " choice " + std::to_string(c);
      if (ch.continuation.empty())
        fail(path, "continuation_tokens", atc + ": empty continuation (every choice needs at least one token)");
      detail::check_ids(ch.continuation, pack.vocab_size, path, "continuation_tokens", atc);
      if (ch.chars < 0) fail(path, "choice_chars", atc + ": negative length " + std::to_string(ch.chars));
      if (ch.bytes < ch.chars)
        fail(path, "choice_bytes", atc + ": " + std::to_string(ch.bytes) + " UTF-8 bytes cannot hold " +
                                       std::to_string(ch.chars) + " code points");
    }
  }
}

namespace {

// The root attributes after format and format_version.
void read_task_attributes(const h5::Handle& f, const std::string& path, TaskPack& pack) {
  pack.name = h5::read_string_attr(f, "name", path);
  pack.source_task = h5::read_string_attr(f, "source_task", path);
  pack.task_version = h5::read_string_attr(f, "task_version", path);
  pack.tokenizer = h5::read_string_attr(f, "tokenizer", path);
  const std::int64_t fewshot = h5::read_int_attr(f, "num_fewshot", path);
  if (fewshot < 0 || fewshot > std::numeric_limits<std::int32_t>::max())
    fail(path, "attribute num_fewshot", "must be in [0, 2^31-1], found " + std::to_string(fewshot));
  pack.num_fewshot = static_cast<std::int32_t>(fewshot);
  pack.vocab_size = h5::read_int_attr(f, "vocab_size", path);
}

}  // namespace

TaskPack read_task_pack(const std::string& path) {
  h5::Handle f = detail::open_pack(path, kFormat, kFormatVersion);
  TaskPack pack;
  pack.path = path;
  read_task_attributes(f, path, pack);
  const auto gold = h5::read_i32(f, "gold", path);
  const auto chars = h5::read_i64(f, "choice_chars", path);
  const auto bytes = h5::read_i64(f, "choice_bytes", path);
  const std::size_t n_items = gold.size(), n_choices = chars.size();
  const auto context = detail::read_ragged_i32(f, "context_tokens", "context_offsets", n_items, path, "item");
  const auto choice_off = detail::read_offsets(f, "choice_offsets", n_items, n_choices, path, "item");
  const auto cont = detail::read_ragged_i32(f, "continuation_tokens", "continuation_offsets", n_choices, path, "choice");
  f.close();
  if (bytes.size() != n_choices)
    fail(path, "choice_bytes", "has " + std::to_string(bytes.size()) + " entries, expected one per choice (" +
                                   std::to_string(n_choices) + ", the length of choice_chars)");

  pack.items.resize(n_items);
  for (std::size_t i = 0; i < n_items; ++i) {
    TaskItem& it = pack.items[i];
    it.gold = gold[i];
    it.context = context.row(i);
    for (auto c = static_cast<std::size_t>(choice_off[i]); c < static_cast<std::size_t>(choice_off[i + 1]); ++c)
      it.choices.push_back(Choice{cont.row(c), chars[c], bytes[c], {}});
  }
  validate_task_pack(pack, path);
  return pack;
}

void write_task_pack(const std::string& path, const TaskPack& pack) {
  validate_task_pack(pack, path);
  std::vector<std::int32_t> gold;
  detail::Ragged<std::int32_t> context, cont;
  std::vector<std::int64_t> choice_off{0}, chars, bytes;
  for (const TaskItem& it : pack.items) {
    gold.push_back(it.gold);
    context.push_row(it.context);
    for (const Choice& ch : it.choices) {
      cont.push_row(ch.continuation);
      chars.push_back(ch.chars);
      bytes.push_back(ch.bytes);
    }
    choice_off.push_back(static_cast<std::int64_t>(chars.size()));
  }
  detail::write_pack(path, kFormat, kFormatVersion, [&](const h5::Handle& f) {
    h5::write_string_attr(f, "name", pack.name, path);
    h5::write_string_attr(f, "source_task", pack.source_task, path);
    h5::write_string_attr(f, "task_version", pack.task_version, path);
    h5::write_string_attr(f, "tokenizer", pack.tokenizer, path);
    h5::write_int_attr(f, "num_fewshot", pack.num_fewshot, path);
    h5::write_int_attr(f, "vocab_size", pack.vocab_size, path);
    h5::write_i32(f, "gold", gold, path);
    detail::write_ragged_i32(f, "context_tokens", "context_offsets", context, path);
    h5::write_i64(f, "choice_offsets", choice_off, path);
    detail::write_ragged_i32(f, "continuation_tokens", "continuation_offsets", cont, path);
    h5::write_i64(f, "choice_chars", chars, path);
    h5::write_i64(f, "choice_bytes", bytes, path);
  });
}

}  // namespace ms::eval
