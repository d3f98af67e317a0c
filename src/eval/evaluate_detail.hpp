// Pieces of evaluate() shared by its per-output-type parts (internal to ms_eval): evaluate.cpp
// dispatches each task pack by output type; generate_until runs in evaluate_generate.cpp.
#pragma once

#include "mergesweep/eval/evaluate.hpp"

namespace ms::eval::detail {

// True on every rank when any rank's `stop` says so (one sum over the group).
bool group_stops(const EvalShare& share);

// One generate_until task: this rank's generation blocks one round at a time (the stop agreement
// between rounds, as scoring), then every item's tokens gathered to every rank and the texts
// rebuilt there. Returns false when stopped (then `r` holds no generations).
bool generate_task(const model::Decoder& model, const TaskPack& pack, const EvalOptions& opts, const EvalShare& share,
                   const EvalProgress& progress, TaskResult& r);

}  // namespace ms::eval::detail
