// generate_until around the decoding loop (generate_decode.cpp): checks against the model, fixed
// blocks, the stop set, and lm-eval's response text from generated ids.
#include "mergesweep/eval/generate.hpp"

#include <algorithm>
#include <numeric>

#include "mergesweep/core/error.hpp"
#include "mergesweep/model/decoder.hpp"
#include "scoring_detail.hpp"

namespace ms::eval {

const char* stop_name(Generation::Stop s) {
  switch (s) {
    case Generation::Stop::Until: return "until";
    case Generation::Stop::StopToken: return "stop_token";
    case Generation::Stop::Length: return "length";
  }
  return "?";
}

std::int64_t check_generation_pack(const TaskPack& pack, const model::Decoder& model, const ScoreOptions& opts) {
  const GenerationSpec& g = pack.generation;
  if (pack.output_type != OutputType::GenerateUntil)
    fail(pack.path, "attribute output_type",
         std::string("generation needs a generate_until pack, found ") + output_type_name(pack.output_type));
  const std::int64_t vocab = model.config().vocab_size;
  if (pack.vocab_size != vocab)
    fail(pack.path, "attribute vocab_size",
         "a generation pack must decode every id the model can produce: the pack has " +
             std::to_string(pack.vocab_size) + " ids, the model " + std::to_string(vocab) +
             " (export the pack for this model's tokenizer, with --vocab-size " + std::to_string(vocab) + ")");
  if (static_cast<std::int64_t>(g.token_bytes.size()) != pack.vocab_size)
    fail(pack.path, "token_bytes", "has " + std::to_string(g.token_bytes.size()) + " entries for vocab_size " +
                                       std::to_string(pack.vocab_size) + "; one per id expected");
  if (g.max_gen_toks <= 0)
    fail(pack.path, "attribute max_gen_toks", "must be > 0, found " + std::to_string(g.max_gen_toks));
  // The pack reader checks these too; packs made in memory (the testbed, tests) come here unread.
  for (const auto& u : g.until)
    if (u.empty()) fail(pack.path, "until", "an empty stop string (it would cut every response to nothing)");
  const std::int64_t max_len = detail::effective_max_length(model, opts, pack.path);
  if (max_len <= g.max_gen_toks)
    fail(pack.path, "attribute max_gen_toks",
         std::to_string(g.max_gen_toks) + " tokens to generate leave no room for the prompt in max_length " +
             std::to_string(max_len) + " (lm-eval needs max_length - max_gen_toks > 0)");
  return max_len;
}

std::vector<std::int32_t> stop_token_set(const TaskPack& pack, const model::Decoder& model) {
  std::vector<std::int32_t> s = pack.generation.stop_token_ids;
  for (const std::int64_t id : model.config().eos_token_ids)
    if (id < model.config().vocab_size) s.push_back(static_cast<std::int32_t>(id));
  std::sort(s.begin(), s.end());
  s.erase(std::unique(s.begin(), s.end()), s.end());
  return s;
}

std::vector<std::vector<std::size_t>> generation_blocks(const TaskPack& pack, std::int64_t max_length,
                                                        const ScoreOptions& opts) {
  const std::int64_t gen = pack.generation.max_gen_toks;
  const std::int64_t max_ctx = std::max<std::int64_t>(1, max_length - gen);
  std::vector<std::int64_t> len(pack.items.size());
  for (std::size_t i = 0; i < len.size(); ++i)
    len[i] = std::min(static_cast<std::int64_t>(pack.items[i].context.size()), max_ctx);
  // Longest first (ties in pack order), so a block's rows pad little: its first row is its widest.
  std::vector<std::size_t> order(len.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return len[a] > len[b]; });
  const std::int64_t budget = std::max<std::int64_t>(1, opts.batch_tokens);
  std::vector<std::vector<std::size_t>> blocks;
  for (const std::size_t i : order) {
    if (!blocks.empty()) {
      auto& b = blocks.back();
      const std::int64_t row = len[b.front()] + gen;
      if (static_cast<std::int64_t>(b.size() + 1) * row <= budget) {
        b.push_back(i);
        continue;
      }
    }
    blocks.push_back({i});
  }
  return blocks;
}

std::string utf8_lossy(const std::string& bytes) {
  // The Unicode "maximal subpart" practice (Python's and Rust's): a lead byte followed by fewer
  // valid continuation bytes than it needs is one U+FFFD, and decoding resumes at the byte that
  // broke the sequence; the second byte's range depends on the lead (no overlongs, no
  // surrogates, nothing above U+10FFFF).
  static const char kReplacement[] = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(bytes.size());
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const std::size_t n = bytes.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    int need = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c == 0xE0) need = 2, lo = 0xA0;
    else if (c >= 0xE1 && c <= 0xEC) need = 2;  // NOLINT(bugprone-branch-clone): the UTF-8 table's rows, kept apart
    else if (c == 0xED) need = 2, hi = 0x9F;
    else if (c >= 0xEE && c <= 0xEF) need = 2;
    else if (c == 0xF0) need = 3, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) need = 3;
    else if (c == 0xF4) need = 3, hi = 0x8F;
    std::size_t j = i + 1;
    int got = 0;
    while (got < need && j < n) {
      const unsigned char d = p[j];
      if (d < (got == 0 ? lo : 0x80) || d > (got == 0 ? hi : 0xBF)) break;
      ++j;
      ++got;
    }
    if (need > 0 && got == need) out.append(bytes, i, j - i);
    else out += kReplacement;
    i = need > 0 ? j : i + 1;
  }
  return out;
}

std::string decoded_text(const GenerationSpec& spec, const std::vector<std::int32_t>& tokens) {
  // Ordinary bytes and runs of byte-fallback tokens decode separately (tokenizers' ByteFallback
  // decoder turns each run into a string of its own before the pieces are joined); a token with
  // no bytes (a special one) interrupts neither.
  std::string s, plain, run;
  auto flush_run = [&] {
    if (run.empty()) return;
    if (utf8_lossy(run) == run) {
      s += run;
    } else {
      for (std::size_t k = 0; k < run.size(); ++k) s += "\xEF\xBF\xBD";
    }
    run.clear();
  };
  for (const std::int32_t t : tokens) {
    const auto id = static_cast<std::size_t>(t);
    const std::string& b = spec.token_bytes.at(id);
    if (b.empty()) continue;
    if (id < spec.token_is_byte.size() && spec.token_is_byte[id]) {
      s += utf8_lossy(plain);
      plain.clear();
      run += b;
    } else {
      flush_run();
      plain += b;
    }
  }
  flush_run();
  s += utf8_lossy(plain);
  if (spec.strip_leading_space && !s.empty() && s[0] == ' ') s.erase(0, 1);
  return s;
}

std::string generation_text(const GenerationSpec& spec, const std::vector<std::int32_t>& tokens) {
  std::string s = decoded_text(spec, tokens);
  // lm-eval's postprocess_generated_text: one term after the other, each on what the previous
  // left (not simply the earliest occurrence of any term).
  for (const auto& term : spec.until) {
    if (term.empty()) continue;
    const auto at = s.find(term);
    if (at != std::string::npos) s.resize(at);
  }
  return s;
}

}  // namespace ms::eval
