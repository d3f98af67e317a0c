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

void add_task_rows(std::uint64_t id, const eval::TaskResult& t, archive::ConfigResult& r) {
  switch (t.output_type) {
    case eval::OutputType::MultipleChoice:
      for (const auto& m : t.tally.metrics()) r.results.push_back({id, t.name, m.name, m.value, m.stderr_, t.tally.n});
      return;
    case eval::OutputType::LoglikelihoodRolling: {
      const auto docs = static_cast<std::int64_t>(t.doc_loglik.size());
      for (const auto& m : t.rolling_metrics) r.results.push_back({id, t.name, m.name, m.value, m.stderr_, docs});
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
