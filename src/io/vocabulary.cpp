#include "mergesweep/io/vocabulary.hpp"

#include <algorithm>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>

#include "mergesweep/core/error.hpp"
#include "mergesweep/io/fs_util.hpp"
#include "mergesweep/io/hf_model.hpp"

namespace ms::io {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

constexpr const char* kTokenizer = "tokenizer.json";

void put(TokenizerVocab& v, std::int64_t id, const std::string& token, bool added, bool special) {
  if (id < 0) fail(v.file, token, "token id " + std::to_string(id) + " is negative");
  const auto n = static_cast<std::size_t>(id) + 1;
  if (v.token.size() < n) v.token.resize(n), v.added.resize(n), v.special.resize(n);
  const auto i = static_cast<std::size_t>(id);
  v.token[i] = token;
  v.added[i] = v.added[i] || added;
  v.special[i] = v.special[i] || special;
  v.id[token] = id;
}

// The model's own vocabulary: a mapping (BPE, WordLevel, WordPiece) or a list of [piece, score]
// (Unigram, ids by position).
void read_model_vocab(TokenizerVocab& v, const json& vocab, std::int64_t limit) {
  if (vocab.is_object()) {
    for (const auto& [token, id] : vocab.items())
      if (id.is_number_integer() && id.get<std::int64_t>() < limit) put(v, id.get<std::int64_t>(), token, false, false);
  } else if (vocab.is_array()) {
    for (std::size_t i = 0; i < vocab.size() && static_cast<std::int64_t>(i) < limit; ++i)
      if (vocab[i].is_array() && !vocab[i].empty() && vocab[i][0].is_string())
        put(v, static_cast<std::int64_t>(i), vocab[i][0].get<std::string>(), false, false);
  } else {
    fail(v.file, "model.vocab", "is neither a mapping of tokens to ids nor a list of [piece, score]");
  }
}

bool same_vocab(const TokenizerVocab& a, const TokenizerVocab& b) { return a.token == b.token; }

std::string vocab_text(const HfModel& m, std::int64_t rows, const TokenizerVocab& v) {
  std::size_t named = 0;
  for (const auto& t : v.token) named += t.empty() ? 0 : 1;
  return m.path() + " (" + std::to_string(named) + " tokens, " + std::to_string(rows) + " rows)";
}

// The union's order: the base's tokens, then each model's new ordinary tokens, then each model's
// new added tokens (mergekit's tokenizer/build.py; ids ascending within a model).
void add_union_tokens(VocabPlan& p, const std::vector<TokenizerVocab>& v, std::size_t first) {
  std::map<std::string, bool> seen;
  for (const auto& t : p.tokens) seen[t] = true;
  for (const bool added_pass : {false, true})
    for (std::size_t m = first; m < v.size(); ++m)
      for (std::size_t i = 0; i < v[m].token.size(); ++i) {
        const std::string& t = v[m].token[i];
        if (t.empty() || v[m].added[i] != added_pass || seen.count(t)) continue;
        seen[t] = true;
        p.tokens.push_back(t);
        p.special.push_back(v[m].special[i]);
        p.appended.push_back(true);
      }
}

void set_output_tokens(VocabPlan& p, const TokenizerVocab& from, bool appended) {
  for (std::size_t i = 0; i < from.token.size(); ++i) {
    if (from.token[i].empty()) fail(from.file, "id " + std::to_string(i), "no token has this id (ids must be contiguous)");
    p.tokens.push_back(from.token[i]);
    p.special.push_back(from.special[i]);
    p.appended.push_back(appended);
  }
}

}  // namespace

TokenizerVocab read_tokenizer_vocab(const std::string& model_dir, std::int64_t limit, std::int64_t rows) {
  TokenizerVocab v;
  v.file = model_dir + "/" + kTokenizer;
  if (!path_exists(v.file)) fail(model_dir, kTokenizer, "missing: the vocabulary differs from the base's, and rows are "
                                                        "aligned by token string, which needs each model's tokenizer.json");
  json doc;
  try {
    doc = json::parse(read_text_file(v.file));
  } catch (const json::exception& e) {
    fail(v.file, "", std::string("invalid JSON: ") + e.what());
  }
  if (!doc.contains("model") || !doc["model"].contains("vocab")) fail(v.file, "model.vocab", "missing");
  const std::int64_t all = std::numeric_limits<std::int64_t>::max();
  read_model_vocab(v, doc["model"]["vocab"], all);
  if (doc.contains("added_tokens") && doc["added_tokens"].is_array())
    for (const auto& a : doc["added_tokens"]) {
      if (!a.contains("id") || !a.contains("content")) fail(v.file, "added_tokens", "an entry lacks id or content");
      const auto id = a["id"].get<std::int64_t>();
      put(v, id, a["content"].get<std::string>(), true, a.value("special", false));
    }
  // A token without an embedding row: the tokenizer and the weights disagree (transformers would
  // index past the table); refused rather than guessed.
  if (static_cast<std::int64_t>(v.token.size()) > rows) {
    const auto last = v.token.size() - 1;
    fail(v.file, "'" + v.token[last] + "'",
         "token id " + std::to_string(last) + " has no row: the model's input embedding has " + std::to_string(rows) +
             " rows; the tokenizer does not belong to these weights");
  }
  if (static_cast<std::int64_t>(v.token.size()) > limit) {  // ids past config.json's vocab_size, as mergekit
    v.token.resize(static_cast<std::size_t>(limit)), v.added.resize(v.token.size()), v.special.resize(v.token.size());
    for (auto it = v.id.begin(); it != v.id.end();) it = it->second >= limit ? v.id.erase(it) : std::next(it);
  }
  return v;
}

bool VocabPlan::aligns(std::size_t m) const {
  if (model_rows[m] != rows) return true;
  for (std::size_t r = 0; r < own[m].size(); ++r)
    if (own[m][r] != static_cast<std::int64_t>(r)) return true;
  return false;
}

std::shared_ptr<const VocabPlan> plan_vocabulary(const VocabChoice& c, const std::vector<const HfModel*>& models,
                                                 const std::vector<std::int64_t>& rows,
                                                 const std::vector<std::string>& fields) {
  // Same row counts and byte-identical (or absent) tokenizer files: nothing to align, nothing read.
  const std::string base_tok = models[0]->path() + "/" + kTokenizer;
  const std::string base_text = path_exists(base_tok) ? read_text_file(base_tok) : "";
  bool uniform = true;
  for (std::size_t m = 1; m < models.size() && uniform; ++m) {
    const std::string f = models[m]->path() + "/" + kTokenizer;
    uniform = rows[m] == rows[0] && (!path_exists(f) || base_text.empty() || read_text_file(f) == base_text);
  }
  if (uniform && c.source != VocabSource::Model) return nullptr;
  // Rows can only be matched by token string when every model has its tokenizer: without one, the
  // shape check refuses the family, naming both shapes.
  for (const auto* m : models)
    if (!path_exists(m->path() + "/" + kTokenizer)) return nullptr;
  // Without a choice, row counts that differ are refused by the shape check (both shapes named);
  // equal row counts are read on, since a reordered vocabulary would merge different tokens.
  if (c.source == VocabSource::Refuse)
    for (std::size_t m = 1; m < models.size(); ++m)
      if (rows[m] != rows[0]) return nullptr;
  std::vector<TokenizerVocab> v;
  for (std::size_t m = 0; m < models.size(); ++m) {
    const auto cfg_vocab = models[m]->config() ? models[m]->config()->vocab_size : 0;
    v.push_back(read_tokenizer_vocab(models[m]->path(), cfg_vocab > 0 ? std::min(cfg_vocab, rows[m]) : rows[m], rows[m]));
  }
  bool same = true;
  for (std::size_t m = 1; m < v.size(); ++m) same = same && same_vocab(v[m], v[0]) && rows[m] == rows[0];
  if (same && c.source != VocabSource::Model) return nullptr;
  if (c.source == VocabSource::Refuse) {
    std::size_t m = 1;
    while (same_vocab(v[m], v[0]) && rows[m] == rows[0]) ++m;
    fail(models[m]->path(), m < fields.size() ? fields[m] : "",
         "its vocabulary " + vocab_text(*models[m], rows[m], v[m]) + " differs from the base's " +
             vocab_text(*models[0], rows[0], v[0]) +
             "; choose how to align rows by token string: tokenizer_source: base, union or a model (merge), "
             "vocabulary: base (sweep)");
  }
  auto p = std::make_shared<VocabPlan>();
  p->base_in_merge = c.base_in_merge;
  p->model_rows = rows;
  for (const auto* m : models) p->model_paths.push_back(m->path());
  const std::size_t src = c.source == VocabSource::Model ? c.model : 0;
  set_output_tokens(*p, v[src], false);
  p->tokenizer_dir = models[src]->path();
  if (c.source == VocabSource::Union) add_union_tokens(*p, v, 0);
  p->rows = c.keep_base_rows ? std::max<std::int64_t>(rows[0], static_cast<std::int64_t>(p->tokens.size()))
                             : static_cast<std::int64_t>(p->tokens.size());
  for (std::size_t m = 0; m < v.size(); ++m) {
    std::vector<std::int64_t> own(static_cast<std::size_t>(p->rows), -1);
    for (std::size_t r = 0; r < p->tokens.size(); ++r) {
      const auto it = v[m].id.find(p->tokens[r]);
      if (it != v[m].id.end()) own[r] = it->second;
    }
    // The sweep keeps the base's padding rows: the base's own, and the base's values for the others.
    for (auto r = static_cast<std::int64_t>(p->tokens.size()); r < p->rows; ++r)
      own[static_cast<std::size_t>(r)] = m == 0 ? r : -1;
    p->own.push_back(std::move(own));
  }
  return p;
}

std::string union_tokenizer_json(const VocabPlan& p, const std::string& base_text) {
  ojson doc = ojson::parse(base_text);
  for (std::size_t r = 0; r < p.tokens.size(); ++r) {
    if (!p.appended[r]) continue;
    ojson a;
    a["id"] = r;
    a["content"] = p.tokens[r];
    a["single_word"] = false;
    a["lstrip"] = false;
    a["rstrip"] = false;
    a["normalized"] = !p.special[r];
    a["special"] = static_cast<bool>(p.special[r]);
    doc["added_tokens"].push_back(a);
  }
  return doc.dump(2);
}

}  // namespace ms::io
