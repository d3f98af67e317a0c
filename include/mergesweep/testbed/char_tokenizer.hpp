// The testbed's character-level tokenizer: one token per character of a fixed alphabet, four
// special tokens first. Written as a Hugging Face tokenizer.json (WordLevel model, a Split
// pre-tokenizer that isolates every character), so `tokenizers`/transformers encode text to the
// same ids as encode() here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ms::testbed {

class CharTokenizer {
 public:
  static constexpr std::int32_t kPad = 0, kBos = 1, kEos = 2, kUnk = 3;
  CharTokenizer();

  std::int64_t vocab_size() const { return static_cast<std::int64_t>(tokens_.size()); }
  const std::vector<std::string>& tokens() const { return tokens_; }
  // Throws ms::Error for a character outside the alphabet (the generators never produce one).
  std::vector<std::int32_t> encode(const std::string& text) const;
  std::string decode(const std::vector<std::int32_t>& ids) const;

  // The files of a HF model folder: tokenizer.json, tokenizer_config.json, special_tokens_map.json.
  std::string tokenizer_json() const;
  std::string tokenizer_config_json(std::int64_t model_max_length) const;
  std::string special_tokens_map_json() const;

 private:
  std::vector<std::string> tokens_;
  std::int32_t id_of_[256];
};

}  // namespace ms::testbed
