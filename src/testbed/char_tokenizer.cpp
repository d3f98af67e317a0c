#include "mergesweep/testbed/char_tokenizer.hpp"

#include <nlohmann/json.hpp>

#include "mergesweep/core/error.hpp"

namespace ms::testbed {
namespace {

// Every character the task and probe generators use; ids follow this order after the specials.
constexpr const char* kAlphabet = " 0123456789abcdefghijklmnopqrstuvwxyz+-=:?,.()[]{}<>|";

}  // namespace

CharTokenizer::CharTokenizer() : tokens_{"<pad>", "<s>", "</s>", "<unk>"} {
  for (int& id : id_of_) id = -1;
  for (const char* p = kAlphabet; *p; ++p) {
    id_of_[static_cast<unsigned char>(*p)] = static_cast<std::int32_t>(tokens_.size());
    tokens_.emplace_back(1, *p);
  }
}

std::vector<std::int32_t> CharTokenizer::encode(const std::string& text) const {
  std::vector<std::int32_t> ids;
  ids.reserve(text.size());
  for (unsigned char c : text) {
    const std::int32_t id = id_of_[c];
    if (id < 0) fail("", "testbed tokenizer", "character " + std::to_string(c) + " is not in the alphabet");
    ids.push_back(id);
  }
  return ids;
}

std::string CharTokenizer::decode(const std::vector<std::int32_t>& ids) const {
  std::string s;
  for (std::int32_t id : ids) {
    if (id >= 4 && id < vocab_size()) s += tokens_[static_cast<std::size_t>(id)];
  }
  return s;
}

std::string CharTokenizer::tokenizer_json() const {
  using J = nlohmann::ordered_json;
  J added = J::array();
  for (std::int32_t i = 0; i < 4; ++i) {
    added.push_back({{"id", i}, {"content", tokens_[static_cast<std::size_t>(i)]}, {"single_word", false},
                     {"lstrip", false}, {"rstrip", false}, {"normalized", false}, {"special", true}});
  }
  J vocab = J::object();
  for (std::size_t i = 0; i < tokens_.size(); ++i) vocab[tokens_[i]] = i;
  J j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = added;
  j["normalizer"] = nullptr;
  // "." isolates every character (spaces included), so each becomes one WordLevel word.
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "."}}}, {"behavior", "Isolated"}, {"invert", false}};
  j["post_processor"] = nullptr;  // no BOS/EOS added: lm-eval's HF backend encodes without them
  j["decoder"] = {{"type", "Fuse"}};
  j["model"] = {{"type", "WordLevel"}, {"vocab", vocab}, {"unk_token", "<unk>"}};
  return j.dump(2) + "\n";
}

std::string CharTokenizer::tokenizer_config_json(std::int64_t model_max_length) const {
  nlohmann::ordered_json j;
  j["tokenizer_class"] = "PreTrainedTokenizerFast";
  j["bos_token"] = "<s>";
  j["eos_token"] = "</s>";
  j["unk_token"] = "<unk>";
  j["pad_token"] = "<pad>";
  j["add_bos_token"] = false;
  j["add_eos_token"] = false;
  j["clean_up_tokenization_spaces"] = false;
  j["model_max_length"] = model_max_length;
  return j.dump(2) + "\n";
}

std::string CharTokenizer::special_tokens_map_json() const {
  nlohmann::ordered_json j;
  j["bos_token"] = "<s>";
  j["eos_token"] = "</s>";
  j["unk_token"] = "<unk>";
  j["pad_token"] = "<pad>";
  return j.dump(2) + "\n";
}

}  // namespace ms::testbed
