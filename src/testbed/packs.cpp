#include "packs.hpp"

#include "mergesweep/core/error.hpp"
#include "rng.hpp"

namespace ms::testbed {
namespace {

// The header every testbed pack shares: its name, source and tokenizer, zero-shot.
eval::TaskPack empty_pack(const TaskFamily& family, const CharTokenizer& tok) {
  eval::TaskPack pack;
  pack.name = "testbed_" + family.name;
  pack.source_task = "testbed/" + family.name;
  pack.task_version = "1";
  pack.tokenizer = "mergesweep-testbed-char";
  pack.num_fewshot = 0;
  pack.vocab_size = tok.vocab_size();
  return pack;
}

}  // namespace

eval::TaskPack make_task_pack(const TaskFamily& family, const CharTokenizer& tok, int items, std::uint64_t seed,
                              std::set<std::string>* prompts) {
  Rng rng = Rng::for_purpose(seed, "tasks/" + family.name);
  eval::TaskPack pack = empty_pack(family, tok);
  // Gold positions: exactly items/4 at each position, in a seeded order.
  std::vector<std::int32_t> gold;
  gold.reserve(static_cast<std::size_t>(items));
  for (int i = 0; i < items; ++i) gold.push_back(i % 4);
  rng.shuffle(gold);
  std::set<std::string> seen;
  for (int i = 0, tries = 0; i < items; ++tries) {
    if (tries > items * 1000) fail("", "testbed", "family " + family.name + " cannot make " + std::to_string(items) + " distinct items");
    Example e = family.generate(rng);
    if (!seen.insert(e.prompt).second) continue;
    std::vector<std::string> choices = e.distractors;
    rng.shuffle(choices);
    const std::int32_t g = gold[static_cast<std::size_t>(i)];
    choices.insert(choices.begin() + g, e.answer);
    eval::TaskItem item;
    // The context has no trailing space, so lm-eval's split leaves it whole and the continuation
    // is " " + choice; a char-level tokenizer encodes the joined string as the two parts.
    item.context = tok.encode(e.prompt);
    for (const auto& c : choices) {
      eval::Choice ch;
      ch.continuation = tok.encode(" " + c);
      ch.chars = static_cast<std::int64_t>(c.size());  // ASCII: code points == bytes
      ch.bytes = static_cast<std::int64_t>(c.size());
      item.choices.push_back(std::move(ch));
    }
    item.gold = g;
    pack.items.push_back(std::move(item));
    ++i;
  }
  if (prompts) *prompts = std::move(seen);
  return pack;
}

namespace {

// lm-eval's HF backend decodes with skip_special_tokens: the specials give no bytes, every other
// id its one character.
eval::GenerationSpec char_generation_spec(const CharTokenizer& tok) {
  eval::GenerationSpec g;
  g.max_gen_toks = kMaxGenToks;
  // "\n" is the task's stop string (what an lm-eval YAML for these tasks says; the alphabet has no
  // newline, so the model ends its answers with EOS instead), "</s>" the EOS string lm-eval appends.
  g.until = {"\n", tok.tokens()[CharTokenizer::kEos]};
  g.stop_token_ids = {CharTokenizer::kEos};
  for (std::int32_t id = 0; id < tok.vocab_size(); ++id)
    g.token_bytes.push_back(id < 4 ? std::string() : tok.tokens()[static_cast<std::size_t>(id)]);
  g.strip_leading_space = false;
  return g;
}

}  // namespace

eval::TaskPack make_generation_pack(const TaskFamily& family, const CharTokenizer& tok, int items, std::uint64_t seed,
                                    std::vector<std::string>* answers, std::set<std::string>* prompts) {
  Rng rng = Rng::for_purpose(seed, "tasks/" + family.name);
  eval::TaskPack pack = empty_pack(family, tok);
  pack.output_type = eval::OutputType::GenerateUntil;
  pack.generation = char_generation_spec(tok);
  std::set<std::string> seen;
  std::vector<std::string> targets;
  for (int tries = 0; static_cast<int>(pack.items.size()) < items; ++tries) {
    if (tries > items * 1000) fail("", "testbed", "family " + family.name + " cannot make " + std::to_string(items) + " distinct items");
    Example e = family.generate(rng);
    if (!seen.insert(e.prompt).second) continue;
    eval::TaskItem item;
    item.context = tok.encode(e.prompt);  // the model generates " " + answer, then EOS
    pack.items.push_back(std::move(item));
    targets.push_back(e.answer);
    // The response the engine's exact_match expects: " " + answer, cut at EOS (no lm-eval task
    // exists for these families, so the engine scores them itself).
    pack.generation.targets.push_back(" " + e.answer);
  }
  pack.generation.native_exact_match = true;
  if (answers) *answers = std::move(targets);
  if (prompts) *prompts = std::move(seen);
  return pack;
}

eval::ProbePack make_probe_pack(const ProbeProperty& prop, const CharTokenizer& tok, int train, int dev, int test,
                                std::uint64_t seed) {
  Rng rng = Rng::for_purpose(seed, "probes/" + prop.name);
  eval::ProbePack pack;
  pack.name = "testbed_" + prop.name;
  pack.tokenizer = "mergesweep-testbed-char";
  pack.vocab_size = tok.vocab_size();
  pack.label_names = prop.label_names;
  const auto n_labels = static_cast<std::int32_t>(prop.label_names.size());
  std::set<std::string> seen;
  const std::pair<eval::Split, int> splits[] = {{eval::Split::kTrain, train}, {eval::Split::kDev, dev}, {eval::Split::kTest, test}};
  for (const auto& [split, n] : splits) {
    std::vector<std::int32_t> labels;
    labels.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) labels.push_back(i % n_labels);
    rng.shuffle(labels);
    for (std::int32_t label : labels) {
      ProbeSentence s;
      int tries = 0;
      do {
        if (++tries > 10000) fail("", "testbed", "probe " + prop.name + " cannot make distinct sentences");
        s = prop.generate(rng, label);
      } while (!seen.insert(s.text).second);
      pack.sentences.push_back(tok.encode(s.text));
      pack.labels.push_back(label);
      pack.split.push_back(split);
    }
  }
  return pack;
}

}  // namespace ms::testbed
