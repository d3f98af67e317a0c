// Structure checks of an in-memory task pack, per output type (docs/formats.md "Task packs" and
// "Task packs, format_version 2"). Run on every read and before every write, so a pack that
// loads is one the scorers and the generator can use without further checks of their own.
#include <limits>

#include "mergesweep/core/error.hpp"
#include "mergesweep/eval/task_pack.hpp"
#include "pack_checks.hpp"

namespace ms::eval {
namespace {

void check_choice(const Choice& ch, const TaskPack& pack, const std::string& path, const std::string& at) {
  if (ch.continuation.empty())
    fail(path, "continuation_tokens", at + ": empty continuation (every choice needs at least one token)");
  detail::check_ids(ch.continuation, pack.vocab_size, path, "continuation_tokens", at);
  detail::check_ids(ch.context, pack.vocab_size, path, "choice_context_tokens", at);
  if (ch.chars < 0) fail(path, "choice_chars", at + ": negative length " + std::to_string(ch.chars));
  if (ch.bytes < ch.chars)
    fail(path, "choice_bytes",
         at + ": " + std::to_string(ch.bytes) + " UTF-8 bytes cannot hold " + std::to_string(ch.chars) + " code points");
}

// Either every item shares one context among its choices, or (lm-eval's multiple_input form) no
// item has a shared context and every choice has its own. Mixing both is refused: the file
// layout stores one or the other for the whole pack.
void check_context_form(const TaskPack& pack, const std::string& path) {
  const bool per_choice = uses_choice_contexts(pack);
  for (std::size_t i = 0; i < pack.items.size(); ++i) {
    const TaskItem& it = pack.items[i];
    const std::string at = "item " + std::to_string(i);
    if (!per_choice && it.context.empty())
      fail(path, "context_tokens", at + ": empty context (lm-eval scores an empty context as [BOS]; export it so)");
    if (per_choice && !it.context.empty())
      fail(path, "context_tokens",
           at + ": has a shared context, but the pack has per-choice contexts (choice_context_tokens); "
                "expected every context per choice");
    for (std::size_t c = 0; per_choice && c < it.choices.size(); ++c)
      if (it.choices[c].context.empty())
        fail(path, "choice_context_tokens",
             at + " choice " + std::to_string(c) + ": empty context, expected one per choice (the pack has per-choice contexts)");
  }
}

void check_multiple_choice(const TaskPack& pack, const std::string& path) {
  check_context_form(pack, path);
  for (std::size_t i = 0; i < pack.items.size(); ++i) {
    const TaskItem& it = pack.items[i];
    const std::string at = "item " + std::to_string(i);
    if (it.choices.empty()) fail(path, "choice_offsets", at + ": empty choices (every item needs at least one choice)");
    if (it.gold < 0 || static_cast<std::size_t>(it.gold) >= it.choices.size())
      fail(path, "gold", at + ": gold " + std::to_string(it.gold) + " is not a choice index in [0, " +
                             std::to_string(it.choices.size()) + ")");
    for (std::size_t c = 0; c < it.choices.size(); ++c) check_choice(it.choices[c], pack, path, at + " choice " + std::to_string(c));
  }
}

void check_rolling(const TaskPack& pack, const std::string& path) {
  if (pack.rolling_max_length <= 0)
    fail(path, "attribute max_length", "must be > 0 for loglikelihood_rolling, found " + std::to_string(pack.rolling_max_length));
  if (pack.docs.empty()) fail(path, "doc_words", "a loglikelihood_rolling pack needs at least one document");
  std::vector<std::size_t> windows(pack.docs.size(), 0);
  for (std::size_t i = 0; i < pack.items.size(); ++i) {
    const TaskItem& it = pack.items[i];
    const std::string at = "item " + std::to_string(i);
    if (it.context.empty()) fail(path, "context_tokens", at + ": empty window context (lm-eval's first window has the prefix token)");
    if (it.choices.size() != 1 || it.gold != 0)
      fail(path, "choice_offsets", at + ": a rolling window has exactly one choice and gold 0, found " +
                                       std::to_string(it.choices.size()) + " choices, gold " + std::to_string(it.gold));
    check_choice(it.choices[0], pack, path, at);
    if (!it.choices[0].context.empty()) fail(path, "choice_context_tokens", at + ": rolling windows have no per-choice context");
    if (it.doc < 0 || static_cast<std::size_t>(it.doc) >= pack.docs.size() || (i > 0 && it.doc < pack.items[i - 1].doc))
      fail(path, "item_doc", at + ": document " + std::to_string(it.doc) + ", expected non-decreasing indices in [0, " +
                                 std::to_string(pack.docs.size()) + ")");
    ++windows[static_cast<std::size_t>(it.doc)];
  }
  for (std::size_t d = 0; d < pack.docs.size(); ++d) {
    const std::string at = "document " + std::to_string(d);
    if (windows[d] == 0) fail(path, "item_doc", at + " has no window");
    if (pack.docs[d].words < 0) fail(path, "doc_words", at + ": negative word count " + std::to_string(pack.docs[d].words));
    if (pack.docs[d].bytes < 0) fail(path, "doc_bytes", at + ": negative byte count " + std::to_string(pack.docs[d].bytes));
  }
}

void check_generation(const TaskPack& pack, const std::string& path) {
  const GenerationSpec& g = pack.generation;
  if (g.max_gen_toks <= 0)
    fail(path, "attribute max_gen_toks", "must be > 0 (tokens to generate per item), found " + std::to_string(g.max_gen_toks));
  for (std::size_t u = 0; u < g.until.size(); ++u)
    if (g.until[u].empty())
      fail(path, "until", "stop string " + std::to_string(u) + " is empty (lm-eval ignores empty stop strings; remove it)");
  detail::check_ids(g.stop_token_ids, pack.vocab_size, path, "stop_token_ids", "the pack");
  if (static_cast<std::int64_t>(g.token_bytes.size()) != pack.vocab_size)
    fail(path, "token_bytes_offsets",
         "the byte table has " + std::to_string(g.token_bytes.size()) + " entries, expected one per token id (vocab_size " +
             std::to_string(pack.vocab_size) + "): it does not cover the vocabulary");
  if (!g.targets.empty() && g.targets.size() != pack.items.size())
    fail(path, "target", "has " + std::to_string(g.targets.size()) + " entries, expected one per item (" +
                             std::to_string(pack.items.size()) + ")");
  if (g.native_exact_match && g.targets.empty())
    fail(path, "attribute native_metric", "exact_match needs a target per item (dataset target), found none");
  for (std::size_t i = 0; i < pack.items.size(); ++i) {
    const TaskItem& it = pack.items[i];
    const std::string at = "item " + std::to_string(i);
    if (it.context.empty()) fail(path, "context_tokens", at + ": empty prompt (export an empty prompt as [BOS])");
    if (!it.choices.empty())
      fail(path, "choice_offsets", at + ": a generate_until item has no choices, found " + std::to_string(it.choices.size()));
  }
}

}  // namespace

bool uses_choice_contexts(const TaskPack& pack) {
  for (const TaskItem& it : pack.items)
    for (const Choice& ch : it.choices)
      if (!ch.context.empty()) return true;
  return false;
}

void validate_task_pack(const TaskPack& pack, const std::string& path) {
  if (pack.vocab_size <= 0 || pack.vocab_size > std::numeric_limits<std::int32_t>::max())
    fail(path, "attribute vocab_size", "must be in [1, 2^31-1], found " + std::to_string(pack.vocab_size));
  if (pack.num_fewshot < 0) fail(path, "attribute num_fewshot", "must be >= 0, found " + std::to_string(pack.num_fewshot));
  if (pack.items.empty()) fail(path, "gold", "the pack has no items");
  for (std::size_t i = 0; i < pack.items.size(); ++i)
    detail::check_ids(pack.items[i].context, pack.vocab_size, path, "context_tokens", "item " + std::to_string(i));
  switch (pack.output_type) {
    case OutputType::MultipleChoice:
      return check_multiple_choice(pack, path);
    case OutputType::LoglikelihoodRolling:
      return check_rolling(pack, path);
    case OutputType::GenerateUntil:
      return check_generation(pack, path);
  }
}

}  // namespace ms::eval
