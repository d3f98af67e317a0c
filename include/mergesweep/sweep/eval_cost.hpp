// The evaluation's cost per config, estimated from the task packs for `sweep --plan`: every
// config runs the same eval set, so this is the part of a config's time that does not depend
// on its merge. Unit: model forwards per item (docs/formats.md, "Sweep spec", the cost model):
//   multiple_choice, loglikelihood_rolling: 1 (the item's context and continuations are scored
//     in one packed forward);
//   generate_until: 1 + max_gen_toks (one prefill forward of the prompt, then up to max_gen_toks
//     decode steps; each step is a forward of the whole model for one new token per sequence, so
//     it reads every weight once just as a scoring forward does). An upper bound: a sequence ends
//     sooner at an `until` string or a stop token.
// Probe packs are not counted (one forward per sentence, once per config, as scoring).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mergesweep/eval/task_pack.hpp"

namespace ms::sweep {

struct SweepSpec;

struct TaskCost {
  std::string name;
  eval::OutputType output_type = eval::OutputType::MultipleChoice;
  std::int64_t items = 0;
  std::int64_t max_gen_toks = 0;  // generate_until only
  double forwards = 0;            // items × forwards per item
};

struct EvalCost {
  std::vector<TaskCost> tasks;
  double forwards = 0;             // per config, all tasks
  double generation_forwards = 0;  // of which generate_until tasks
};

double forwards_per_item(const eval::TaskPack& pack);
// The spec's task packs as the workers will evaluate them (eval.limit applied).
std::vector<eval::TaskPack> read_eval_packs(const SweepSpec& spec);
EvalCost estimate_eval_cost(const std::vector<eval::TaskPack>& packs);
// Lines for `sweep --plan`: per task and in total, per config and for `configs` configs.
std::string describe_eval_cost(const EvalCost& cost, std::size_t configs);

}  // namespace ms::sweep
