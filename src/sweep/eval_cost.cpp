#include "mergesweep/sweep/eval_cost.hpp"

#include <cstdio>

#include "mergesweep/sweep/spec.hpp"

namespace ms::sweep {

std::vector<eval::TaskPack> read_eval_packs(const SweepSpec& spec) {
  std::vector<eval::TaskPack> packs;
  for (const auto& p : spec.eval.tasks) {
    packs.push_back(eval::read_task_pack(p));
    eval::limit_task_pack(packs.back(), spec.eval.limit);
  }
  return packs;
}


double forwards_per_item(const eval::TaskPack& pack) {
  if (pack.output_type == eval::OutputType::GenerateUntil) return 1.0 + static_cast<double>(pack.generation.max_gen_toks);
  return 1.0;
}

EvalCost estimate_eval_cost(const std::vector<eval::TaskPack>& packs) {
  EvalCost c;
  for (const auto& p : packs) {
    TaskCost t;
    t.name = p.name;
    t.output_type = p.output_type;
    t.items = static_cast<std::int64_t>(p.items.size());
    if (p.output_type == eval::OutputType::GenerateUntil) t.max_gen_toks = p.generation.max_gen_toks;
    t.forwards = static_cast<double>(t.items) * forwards_per_item(p);
    c.forwards += t.forwards;
    if (p.output_type == eval::OutputType::GenerateUntil) c.generation_forwards += t.forwards;
    c.tasks.push_back(std::move(t));
  }
  return c;
}

std::string describe_eval_cost(const EvalCost& cost, std::size_t configs) {
  std::string out = "eval cost per config (estimate, in model forwards; generate_until: 1 + max_gen_toks per item):\n";
  char line[512];
  for (const auto& t : cost.tasks) {
    const std::string per = t.output_type == eval::OutputType::GenerateUntil
                                ? "x (1 + " + std::to_string(t.max_gen_toks) + " decode steps)"
                                : "x 1";
    std::snprintf(line, sizeof line, "  %-24s %-22s %8lld items %-28s = %.4g\n", t.name.c_str(),
                  eval::output_type_name(t.output_type), static_cast<long long>(t.items), per.c_str(), t.forwards);
    out += line;
  }
  const double share = cost.forwards > 0 ? 100.0 * cost.generation_forwards / cost.forwards : 0.0;
  std::snprintf(line, sizeof line, "  total %.4g forwards per config (%.0f%% in generate_until tasks), %.4g for %zu configs\n",
                cost.forwards, share, cost.forwards * static_cast<double>(configs), configs);
  out += line;
  return out;
}

}  // namespace ms::sweep
