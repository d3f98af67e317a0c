// Vocabularies of a family, and how each model's embedding and head rows line up with the merged
// model's tokens. mergekit 0.1.5's `tokenizer_source` is the reference (docs/checkpoints.md,
// "Vocabularies and heads"; fixtures made by mergekit itself in tests/fixtures/vocab/):
//  - base:    the base's tokens (ids below its config's vocab_size), ids unchanged;
//  - union:   the base's tokens, then each model's new ordinary tokens, then each model's new
//             added tokens (models in order, ids ascending within one);
//  - a model: that model's whole tokenizer, ids unchanged.
// Rows are matched by token string; rows a model's tokenizer does not name (padding) are never
// read. A model that lacks an output token gets a substitute row, chosen over every model of the
// merge (the base included): the one model that has it; zeros when none has it; the base's row
// when the base has it; else the plain mean of the rows of the models that have it.
// Nothing here reads tensors: family_tensors.hpp forms the aligned rows.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace ms::io {

class HfModel;

// One model's tokenizer.json, as token strings by id (ids at or above `limit` left out).
struct TokenizerVocab {
  std::string file;                       // the tokenizer.json read
  std::vector<std::string> token;         // by id; "" for an id the file does not name
  std::vector<bool> added;                // listed in added_tokens (not in the model's vocab)
  std::vector<bool> special;
  std::map<std::string, std::int64_t> id;  // token string -> id
};

// Reads MODEL/tokenizer.json. Ids at or above `limit` (the config's vocab_size) are left out, as
// mergekit leaves them out. Refuses, naming the file, a missing or unreadable tokenizer.json and
// a token whose id has no row among the embedding's `rows`.
TokenizerVocab read_tokenizer_vocab(const std::string& model_dir, std::int64_t limit, std::int64_t rows);

enum class VocabSource { Refuse, Base, Union, Model };

struct VocabChoice {
  VocabSource source = VocabSource::Refuse;
  std::size_t model = 0;      // with Model: 0 = the base, k = checkpoint k-1
  bool keep_base_rows = false;  // the sweep: the base's row count and padding rows, not N tokens
  bool base_in_merge = true;  // false: mergekit's merge without a base_model (no base-row substitute)
};

// How model m's rows make the merged embedding: for output row r, the model's own row
// `own[m][r]` (-1 when the model lacks the token), else the substitute `from` rule above.
struct VocabPlan {
  std::vector<std::string> tokens;  // the merged model's tokens, by id
  std::vector<bool> special;
  std::vector<bool> appended;       // not a token of the base (union): written as an added token
  std::int64_t rows = 0;            // rows of the merged embedding (tokens, or the base's rows)
  std::vector<std::vector<std::int64_t>> own;  // [model 0 = base, 1.. = checkpoints][row]
  std::vector<std::string> model_paths;
  std::string tokenizer_dir;        // whose tokenizer files the merged model gets (base, or a model)
  bool base_in_merge = true;
  std::vector<std::int64_t> model_rows;  // each model's own embedding rows
  // Whether model m's rows must be formed: a row that is not "row r of the same model", or a row
  // count that differs from the merged one.
  bool aligns(std::size_t m) const;
};

// Plans the merged vocabulary. `rows[m]` is model m's embedding row count. Returns nullptr when
// every model has the base's tokenizer and row count (nothing to align). With Refuse, a family
// whose vocabularies differ is refused naming both vocabularies.
// `fields[m]` names where model m came from, for a refusal ("checkpoints[2]"; may be empty).
std::shared_ptr<const VocabPlan> plan_vocabulary(const VocabChoice& choice, const std::vector<const HfModel*>& models,
                                                 const std::vector<std::int64_t>& rows,
                                                 const std::vector<std::string>& fields);

// tokenizer.json of the union vocabulary: the base's file with the appended tokens added.
std::string union_tokenizer_json(const VocabPlan& plan, const std::string& base_tokenizer_json);

}  // namespace ms::io
