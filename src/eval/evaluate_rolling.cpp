// loglikelihood_rolling (perplexity tasks such as wikitext), as lm-eval computes it: each pack
// item is one of lm-eval's rolling windows (context, one continuation); a document's
// log-likelihood is the sum of its windows' (lm-eval's HFLM.loglikelihood_rolling), and the task's
// metrics are lm-eval's aggregations over documents (lm_eval/api/metrics.py; the formulas are in
// mergesweep/eval/aggregate.hpp).
// Windows are scored in the same fixed blocks as any task; each window's log-likelihood fills its
// own slot (zero elsewhere), the slots are summed over the group (one nonzero per slot: exact),
// and every rank then sums windows per document in window order, so the result never depends on
// the rank count.
#include <cmath>
#include <string>

#include "evaluate_detail.hpp"
#include "mergesweep/eval/aggregate.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/model/decoder.hpp"
#include "scoring_detail.hpp"

namespace ms::eval::detail {

// The pack's windows were cut for one max_length; scored with another, lm-eval's inputs differ.
void check_rolling_pack(const model::Decoder& model, const TaskPack& pack, const ScoreOptions& opts) {
  const std::int64_t max_len = effective_max_length(model, opts, pack.path);
  if (pack.rolling_max_length != max_len)
    fail(pack.path, "attribute max_length",
         "the pack's rolling windows were cut for max_length " + std::to_string(pack.rolling_max_length) +
             " but scoring uses max_length " + std::to_string(max_len) +
             " (--max-length, else the model's max_position_embeddings); export the pack with --max-length " +
             std::to_string(max_len) + " or score with --max-length " + std::to_string(pack.rolling_max_length));
  for (std::size_t i = 0; i < pack.items.size(); ++i) {
    const TaskItem& item = pack.items[i];
    if (item.choices.size() != 1)
      fail(pack.path, "choice_offsets",
           "loglikelihood_rolling item " + std::to_string(i) + ": expected exactly 1 choice (the window), found " +
               std::to_string(item.choices.size()));
    if (item.doc < 0 || static_cast<std::size_t>(item.doc) >= pack.docs.size())
      fail(pack.path, "item_doc",
           "item " + std::to_string(i) + ": document " + std::to_string(item.doc) + " outside the pack's " +
               std::to_string(pack.docs.size()) + " documents");
  }
}

bool score_rolling_task(const model::Decoder& model, const TaskPack& pack, const EvalOptions& opts,
                        const EvalShare& share, const EvalProgress& progress, TaskResult& r) {
  std::vector<double> windows(pack.items.size(), 0.0);
  const auto take = [&](std::size_t begin, std::size_t end, const std::vector<ItemScore>& scores) {
    for (std::size_t i = begin; i < end; ++i) windows[i] = scores[i - begin].loglik[0];
  };
  if (!score_rounds(model, pack, opts, share, progress, r, take)) return false;
  if (share.size > 1) share.sum_double(windows.data(), windows.size());
  r.doc_loglik.assign(pack.docs.size(), 0.0);
  r.doc_tokens.assign(pack.docs.size(), 0);
  for (std::size_t i = 0; i < windows.size(); ++i) {
    const auto d = static_cast<std::size_t>(pack.items[i].doc);
    r.doc_loglik[d] += windows[i];
    r.doc_tokens[d] += static_cast<std::int64_t>(pack.items[i].choices[0].continuation.size());
  }
  for (const auto& doc : pack.docs) {
    r.doc_words.push_back(doc.words);
    r.doc_bytes.push_back(doc.bytes);
  }
  const RollingMetrics m = rolling_metrics(r.doc_loglik, r.doc_words, r.doc_bytes);
  const double na = std::nan("");  // lm-eval reports no standard error for these aggregations
  r.rolling_metrics = {{"word_perplexity", m.word_perplexity, na},
                       {"byte_perplexity", m.byte_perplexity, na},
                       {"bits_per_byte", m.bits_per_byte, na}};
  return true;
}

}  // namespace ms::eval::detail
