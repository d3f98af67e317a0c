// Task pack files (HDF5): flat token arrays with offsets, so a pack of any size is a handful of
// datasets. Layout (format_version 1) in docs/formats.md, section "Task packs".
#include "mergesweep/eval/task_pack.hpp"

#include <cstdio>
#include <limits>

#include "h5_util.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/io/fs_util.hpp"
#include "pack_checks.hpp"

namespace ms::eval {
namespace {

constexpr const char* kFormat = "mergesweep-task-pack";
constexpr std::int64_t kFormatVersion = 1;

}  // namespace

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

TaskPack read_task_pack(const std::string& path) {
  h5::Handle f = h5::open_read(path);
  const hid_t id = f.get();
  const std::string format = h5::read_string_attr(id, "format", path);
  if (format != kFormat) fail(path, "attribute format", "expected '" + std::string(kFormat) + "', found '" + format + "'");
  const std::int64_t version = h5::read_int_attr(id, "format_version", path);
  if (version != kFormatVersion)
    fail(path, "attribute format_version", "unsupported version " + std::to_string(version) + "; this mergesweep reads " +
                                               std::to_string(kFormatVersion));
  TaskPack pack;
  pack.path = path;
  pack.name = h5::read_string_attr(id, "name", path);
  pack.source_task = h5::read_string_attr(id, "source_task", path);
  pack.task_version = h5::read_string_attr(id, "task_version", path);
  pack.tokenizer = h5::read_string_attr(id, "tokenizer", path);
  const std::int64_t fewshot = h5::read_int_attr(id, "num_fewshot", path);
  if (fewshot < 0 || fewshot > std::numeric_limits<std::int32_t>::max())
    fail(path, "attribute num_fewshot", "must be in [0, 2^31-1], found " + std::to_string(fewshot));
  pack.num_fewshot = static_cast<std::int32_t>(fewshot);
  pack.vocab_size = h5::read_int_attr(id, "vocab_size", path);

  const auto gold = h5::read_i32(id, "gold", path);
  const auto ctx_tokens = h5::read_i32(id, "context_tokens", path);
  const auto ctx_off = h5::read_i64(id, "context_offsets", path);
  const auto choice_off = h5::read_i64(id, "choice_offsets", path);
  const auto cont_tokens = h5::read_i32(id, "continuation_tokens", path);
  const auto cont_off = h5::read_i64(id, "continuation_offsets", path);
  const auto chars = h5::read_i64(id, "choice_chars", path);
  const auto bytes = h5::read_i64(id, "choice_bytes", path);
  f.close();

  const std::size_t n_items = gold.size();
  const std::size_t n_choices = chars.size();
  detail::check_offsets(ctx_off, n_items, ctx_tokens.size(), path, "context_offsets", "item");
  detail::check_offsets(choice_off, n_items, n_choices, path, "choice_offsets", "item");
  detail::check_offsets(cont_off, n_choices, cont_tokens.size(), path, "continuation_offsets", "choice");
  if (bytes.size() != n_choices)
    fail(path, "choice_bytes", "has " + std::to_string(bytes.size()) + " entries, expected one per choice (" +
                                   std::to_string(n_choices) + ", the length of choice_chars)");

  pack.items.resize(n_items);
  for (std::size_t i = 0; i < n_items; ++i) {
    TaskItem& it = pack.items[i];
    it.gold = gold[i];
    it.context.assign(ctx_tokens.begin() + ctx_off[i], ctx_tokens.begin() + ctx_off[i + 1]);
    for (std::int64_t c = choice_off[i]; c < choice_off[i + 1]; ++c) {
      Choice ch;
      ch.continuation.assign(cont_tokens.begin() + cont_off[c], cont_tokens.begin() + cont_off[c + 1]);
      ch.chars = chars[c];
      ch.bytes = bytes[c];
      it.choices.push_back(std::move(ch));
    }
  }
  validate_task_pack(pack, path);
  return pack;
}

void write_task_pack(const std::string& path, const TaskPack& pack) {
  validate_task_pack(pack, path);
  std::vector<std::int32_t> gold, ctx_tokens, cont_tokens;
  std::vector<std::int64_t> ctx_off{0}, choice_off{0}, cont_off{0}, chars, bytes;
  for (const TaskItem& it : pack.items) {
    gold.push_back(it.gold);
    ctx_tokens.insert(ctx_tokens.end(), it.context.begin(), it.context.end());
    ctx_off.push_back(static_cast<std::int64_t>(ctx_tokens.size()));
    for (const Choice& ch : it.choices) {
      cont_tokens.insert(cont_tokens.end(), ch.continuation.begin(), ch.continuation.end());
      cont_off.push_back(static_cast<std::int64_t>(cont_tokens.size()));
      chars.push_back(ch.chars);
      bytes.push_back(ch.bytes);
    }
    choice_off.push_back(static_cast<std::int64_t>(chars.size()));
  }
  const std::string tmp = io::temp_sibling(path);
  try {
    h5::Handle f = h5::create_truncate(tmp, path);
    const hid_t id = f.get();
    h5::write_string_attr(id, "format", kFormat, path);
    h5::write_int_attr(id, "format_version", kFormatVersion, path);
    h5::write_string_attr(id, "name", pack.name, path);
    h5::write_string_attr(id, "source_task", pack.source_task, path);
    h5::write_string_attr(id, "task_version", pack.task_version, path);
    h5::write_string_attr(id, "tokenizer", pack.tokenizer, path);
    h5::write_int_attr(id, "num_fewshot", pack.num_fewshot, path);
    h5::write_int_attr(id, "vocab_size", pack.vocab_size, path);
    h5::write_i32(id, "gold", gold, path);
    h5::write_i32(id, "context_tokens", ctx_tokens, path);
    h5::write_i64(id, "context_offsets", ctx_off, path);
    h5::write_i64(id, "choice_offsets", choice_off, path);
    h5::write_i32(id, "continuation_tokens", cont_tokens, path);
    h5::write_i64(id, "continuation_offsets", cont_off, path);
    h5::write_i64(id, "choice_chars", chars, path);
    h5::write_i64(id, "choice_bytes", bytes, path);
    if (H5Fflush(id, H5F_SCOPE_GLOBAL) < 0) fail(path, "", "cannot flush the HDF5 file");
    f.close();
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  io::rename_into_place(tmp, path);
}

}  // namespace ms::eval
