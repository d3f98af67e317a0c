// Building the testbed's task and probe packs from the generators (internal).
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "mergesweep/eval/probes.hpp"
#include "mergesweep/eval/task_pack.hpp"
#include "mergesweep/testbed/char_tokenizer.hpp"
#include "mergesweep/testbed/tasks.hpp"

namespace ms::testbed {

// `items` held-out multiple-choice items with distinct prompts, gold balanced over the 4
// positions; `prompts` receives the prompts (kept out of training).
eval::TaskPack make_task_pack(const TaskFamily& family, const CharTokenizer& tok, int items, std::uint64_t seed,
                              std::set<std::string>* prompts);
// A generate_until pack of `items` held-out items with distinct prompts (a generation family);
// `answers` receives each item's answer (without the leading space the model generates first),
// `prompts` the prompts (kept out of training).
eval::TaskPack make_generation_pack(const TaskFamily& family, const CharTokenizer& tok, int items, std::uint64_t seed,
                                    std::vector<std::string>* answers, std::set<std::string>* prompts);
// What a generated answer may take: " " + up to 12 characters, then EOS.
constexpr std::int64_t kMaxGenToks = 16;
// Balanced labels in every split, distinct sentences.
eval::ProbePack make_probe_pack(const ProbeProperty& prop, const CharTokenizer& tok, int train, int dev, int test,
                                std::uint64_t seed);

}  // namespace ms::testbed
