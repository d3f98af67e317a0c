#include "mergesweep/sweep/eval_rows.hpp"

#include <algorithm>

namespace ms::sweep {

std::string stop_name(eval::Generation::Stop s) {
  switch (s) {
    case eval::Generation::Stop::Until: return "until";
    case eval::Generation::Stop::StopToken: return "stop_token";
    case eval::Generation::Stop::Length: return "length";
  }
  return "length";
}

namespace {

static_assert(eval::ItemOutcome::kAcc == archive::ItemOutcomes::kAcc &&
                  eval::ItemOutcome::kAccNorm == archive::ItemOutcomes::kAccNorm &&
                  eval::ItemOutcome::kAccBytes == archive::ItemOutcomes::kAccBytes &&
                  eval::ItemOutcome::kExactMatch == archive::ItemOutcomes::kExactMatch,
              "the archive stores the evaluation's outcome bits as they are");

// The per-item rows of a scored task (the log-likelihood of the gold answer kept as float32).
archive::ItemOutcomes item_rows(std::uint64_t id, const eval::TaskResult& t) {
  archive::ItemOutcomes it;
  it.config_id = id;
  it.task = t.name;
  if (t.output_type == eval::OutputType::LoglikelihoodRolling) {
    it.kind = "rolling";
    it.doc_loglik = t.doc_loglik;
    it.doc_tokens = t.doc_tokens;
    it.doc_words = t.doc_words;
    it.doc_bytes = t.doc_bytes;
    return it;
  }
  it.kind = "choice";
  for (const auto& o : t.items) {
    it.outcome.push_back(o.correct);
    it.chosen.push_back(o.chosen);
    it.gold_loglik.push_back(static_cast<float>(o.gold_loglik));
  }
  return it;
}

void add_task_rows(std::uint64_t id, const eval::TaskResult& t, archive::ConfigResult& r) {
  switch (t.output_type) {
    case eval::OutputType::MultipleChoice:
      for (const auto& m : t.tally.metrics()) r.results.push_back({id, t.name, m.name, m.value, m.stderr_, t.tally.n});
      r.items.push_back(item_rows(id, t));
      return;
    case eval::OutputType::LoglikelihoodRolling: {
      const auto docs = static_cast<std::int64_t>(t.doc_loglik.size());
      for (const auto& m : t.rolling_metrics) r.results.push_back({id, t.name, m.name, m.value, m.stderr_, docs});
      r.items.push_back(item_rows(id, t));
      return;
    }
    case eval::OutputType::GenerateUntil:
      for (const auto& m : t.generation_metrics) r.results.push_back({id, t.name, m.name, m.value, m.stderr_, t.tally.n});
      for (std::size_t i = 0; i < t.generations.size(); ++i) {
        const auto& g = t.generations[i];
        r.generations.push_back({id, t.name, static_cast<std::int64_t>(i), stop_name(g.stop), g.tokens, g.text});
      }
      return;
  }
}

}  // namespace

void add_eval_rows(std::uint64_t config_id, const eval::EvalResult& ev, int probe_seeds, archive::ConfigResult& r) {
  for (const auto& t : ev.tasks) add_task_rows(config_id, t, r);
  for (const auto& p : ev.probes)
    for (const auto& l : p.layers) r.probes.push_back({config_id, p.name, l.layer, l.mean, l.std, probe_seeds});
}

}  // namespace ms::sweep
