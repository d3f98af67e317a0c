// The testbed's synthetic task families. A multiple-choice example is a prompt, its answer and
// three wrong answers of the same shape (so that a model must compute, not guess from length or
// alphabet): trained as "prompt answer", evaluated as 4-way multiple choice (context = prompt,
// continuation = " " + choice, as lm-eval builds it). A generation example is a prompt and its
// answer only: trained as "prompt answer</s>" (the EOS id ends the answer), evaluated by greedy
// generation (a generate_until pack). Probe generators label strings by one property each.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ms::testbed {

class Rng;

struct Example {
  std::string prompt;                    // e.g. "add:37+45="
  std::string answer;                    // e.g. "82"
  std::vector<std::string> distractors;  // multiple choice: 3, distinct from each other and the answer
};

struct TaskFamily {
  std::string name;         // e.g. "arith"; the task pack is tasks/<name>.h5
  std::string description;  // one line for testbed.json and docs
  Example (*generate)(Rng& rng);
  // Answered by greedy generation (pack generate/<name>.h5, trained with EOS after the answer)
  // rather than by multiple choice (tasks/<name>.h5); its examples have no distractors.
  bool generation = false;
};
// arith, copy, reverse, sort, count, brackets, lookup, sequence (multiple choice), then
// gen_reverse, gen_digitsum (generation), in this order.
const std::vector<TaskFamily>& task_families();
const TaskFamily& task_family(const std::string& name);  // throws naming the name

struct ProbeSentence {
  std::string text;
  std::int32_t label = 0;
};
struct ProbeProperty {
  std::string name;                      // the probe pack is probes/<name>.h5
  std::string description;
  std::vector<std::string> label_names;
  ProbeSentence (*generate)(Rng& rng, std::int32_t label);  // a sentence with the given label
};
// depth, parity, length, majority, balanced, sorted.
const std::vector<ProbeProperty>& probe_properties();

}  // namespace ms::testbed
