// Greedy generation (generate_until) against a naive loop written here: each step a full forward
// without cache over the whole (left-truncated) prompt plus what was generated so far, the argmax
// of the last position, and lm-eval's stop rules spelled out plainly. On several architectures
// (Mistral with a window of 6), batched blocks against each item alone, left truncation, stop
// strings (one spanning two tokens), stop tokens, max_gen_toks, strip_leading_space, the text
// helpers against Python's own outputs, evaluate() with a group of two ranks, and the checks.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "common/test_util.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/eval/generate.hpp"
#include "mergesweep/model/decoder.hpp"
#include "eval_test_util.hpp"

namespace ms::eval {
namespace {

std::unique_ptr<model::Decoder> load(const std::string& name) {
  return model::Decoder::load(test::source_path("tests/fixtures/model/" + name), at::kFloat);
}

struct Lcg {
  std::uint64_t s;
  std::int32_t next(std::int32_t n) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<std::int32_t>((s >> 33) % static_cast<std::uint64_t>(n));
  }
};

// Id t decodes to "<t>" (ASCII, so the decoded text is the plain concatenation); id 0 to nothing.
TaskPack gen_pack(std::int64_t vocab, int items, int min_ctx, int max_ctx, std::int64_t max_gen, std::uint64_t seed) {
  Lcg g{seed};
  TaskPack p;
  p.name = "gen" + std::to_string(seed);
  p.vocab_size = vocab;
  p.output_type = OutputType::GenerateUntil;
  p.generation.max_gen_toks = max_gen;
  p.generation.token_bytes.push_back("");
  for (std::int64_t t = 1; t < vocab; ++t) p.generation.token_bytes.push_back("<" + std::to_string(t) + ">");
  for (int i = 0; i < items; ++i) {
    TaskItem it;
    const int n = min_ctx + g.next(max_ctx - min_ctx + 1);
    for (int t = 0; t < n; ++t) it.context.push_back(g.next(static_cast<std::int32_t>(vocab)));
    p.items.push_back(it);
  }
  return p;
}

std::string plain_text(const GenerationSpec& s, const std::vector<std::int32_t>& toks) {
  std::string out;
  for (auto t : toks) out += s.token_bytes[static_cast<std::size_t>(t)];
  if (s.strip_leading_space && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

// lm-eval's HF generate_until for one request at batch size 1, written out plainly.
Generation naive(const model::Decoder& m, const TaskPack& p, std::size_t i, std::int64_t max_len) {
  at::NoGradGuard ng;
  const GenerationSpec& s = p.generation;
  const auto& ctx = p.items[i].context;
  const std::int64_t keep = std::min<std::int64_t>(static_cast<std::int64_t>(ctx.size()), max_len - s.max_gen_toks);
  std::vector<std::int64_t> seq(ctx.end() - keep, ctx.end());
  std::vector<std::int32_t> stops = s.stop_token_ids;
  for (auto e : m.config().eos_token_ids) stops.push_back(static_cast<std::int32_t>(e));
  Generation g;
  while (true) {
    const at::Tensor ids = at::from_blob(seq.data(), {1, static_cast<std::int64_t>(seq.size())}, at::kLong).clone();
    const auto id = static_cast<std::int32_t>(m.logits(m.forward(ids))[0][-1].argmax().item<std::int64_t>());
    if (std::find(stops.begin(), stops.end(), id) != stops.end()) {
      g.stop = Generation::Stop::StopToken;
      break;
    }
    g.tokens.push_back(id);
    seq.push_back(id);
    const std::string text = plain_text(s, g.tokens);
    if (std::any_of(s.until.begin(), s.until.end(), [&](const std::string& u) { return text.find(u) != std::string::npos; })) {
      g.stop = Generation::Stop::Until;
      break;
    }
    if (static_cast<std::int64_t>(g.tokens.size()) == s.max_gen_toks) {
      g.stop = Generation::Stop::Length;
      break;
    }
  }
  g.text = plain_text(s, g.tokens);
  for (const auto& u : s.until)
    if (g.text.find(u) != std::string::npos) g.text.resize(g.text.find(u));
  return g;
}

void expect_same(const Generation& got, const Generation& want, const std::string& what) {
  EXPECT_EQ(got.tokens, want.tokens) << what;
  EXPECT_EQ(got.stop, want.stop) << what;
  EXPECT_EQ(got.text, want.text) << what;
}

std::vector<std::size_t> all_items(const TaskPack& p) {
  std::vector<std::size_t> v(p.items.size());
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = i;
  return v;
}

// Batched (the whole pack in one block, and in fixed small blocks) and alone, against naive.
void expect_matches_naive(const model::Decoder& m, const TaskPack& p, const ScoreOptions& o, std::int64_t max_len) {
  const auto batched = generate_items(m, p, all_items(p), o);
  // Blocks of at most two rows (the longest row's padded cost twice).
  std::int64_t longest = 0;
  const std::int64_t gen = p.generation.max_gen_toks;
  for (const auto& it : p.items)
    longest = std::max(longest, std::min<std::int64_t>(static_cast<std::int64_t>(it.context.size()), max_len - gen) + gen);
  ScoreOptions small = o;
  small.batch_tokens = 2 * longest;
  std::vector<Generation> blocked(p.items.size());
  const auto blocks = generation_blocks(p, max_len, small);
  EXPECT_GT(blocks.size(), 1u);
  for (const auto& b : blocks) {
    const auto gens = generate_items(m, p, b, small);
    for (std::size_t k = 0; k < b.size(); ++k) blocked[b[k]] = gens[k];
  }
  for (std::size_t i = 0; i < p.items.size(); ++i) {
    const Generation want = naive(m, p, i, max_len);
    const std::string at = "item " + std::to_string(i);
    expect_same(batched[i], want, at + " batched");
    expect_same(blocked[i], want, at + " in blocks");
    expect_same(generate_items(m, p, {i}, o).front(), want, at + " alone");
  }
}

class Generate : public ::testing::TestWithParam<std::string> {};

TEST_P(Generate, MatchesNaiveGreedyBatchedAndAlone) {
  const auto m = load(GetParam());
  // Prompts of 1..40 tokens, 12 new tokens: all fit the 64 positions; some rows stop on EOS.
  TaskPack p = gen_pack(m->config().vocab_size, 10, 1, 40, 12, 3);
  expect_matches_naive(*m, p, {}, m->config().max_position_embeddings);
  // A shared few-shot header (the trunk, computed once per block) before each item's own part.
  const std::vector<std::int32_t> header = {5, 17, 33, 8, 90, 41, 12, 12, 7, 64, 3, 29};
  for (auto& it : p.items) it.context.insert(it.context.begin(), header.begin(), header.end());
  expect_matches_naive(*m, p, {}, m->config().max_position_embeddings);
}

TEST_P(Generate, LeftTruncationAsLmEval) {
  const auto m = load(GetParam());
  // Prompts up to 70 tokens: cut to max_length - max_gen_toks (64 - 10 = 54, then 24 - 8 = 16).
  TaskPack p = gen_pack(m->config().vocab_size, 8, 10, 70, 10, 5);
  expect_matches_naive(*m, p, {}, m->config().max_position_embeddings);
  p.generation.max_gen_toks = 8;
  ScoreOptions o;
  o.max_length = 24;
  expect_matches_naive(*m, p, o, 24);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Generate, ::testing::Values("llama_untied", "llama3_tied", "mistral", "qwen2", "qwen3"));

TEST(Generate, StopStringSpanningTwoTokensStopTokenAndLength) {
  const auto m = load("qwen3");  // no EOS in its config: only the pack's stop ids count
  TaskPack p = gen_pack(m->config().vocab_size, 6, 3, 20, 9, 11);
  p.generation.token_bytes[0] = "<0>";  // every id has bytes here: the until string is cut from two of them
  const std::int64_t max_len = m->config().max_position_embeddings;
  const auto free = generate_items(*m, p, all_items(p), {});
  for (std::size_t i = 0; i < free.size(); ++i) {
    EXPECT_EQ(free[i].stop, Generation::Stop::Length) << "item " << i;
    EXPECT_EQ(free[i].tokens.size(), 9u) << "item " << i;
  }
  // The until string: the end of token 3's bytes and the start of token 4's ("7><1"), so it is
  // found only once token 4 is there; it must stop there and cut the text before it.
  const auto& t = free[0].tokens;
  const std::string a = p.generation.token_bytes[static_cast<std::size_t>(t[3])];
  const std::string b = p.generation.token_bytes[static_cast<std::size_t>(t[4])];
  const std::string until = a.substr(a.size() - 2) + b.substr(0, 2);
  p.generation.until = {"never", until};
  const std::string before = plain_text(p.generation, {t.begin(), t.begin() + 4});
  const Generation g = generate_items(*m, p, {0}, {}).front();
  if (before.find(until) == std::string::npos) {  // it first appears across tokens 3 and 4
    EXPECT_EQ(g.tokens.size(), 5u);
    EXPECT_EQ(g.stop, Generation::Stop::Until);
    EXPECT_EQ(g.text, (before + b).substr(0, (before + b).find(until)));
  }
  expect_same(g, naive(*m, p, 0, max_len), "until");
  // A stop id: the first occurrence of item 1's third generated id ends it there (excluded).
  p.generation.until.clear();
  const std::int32_t stop = free[1].tokens[2];
  p.generation.stop_token_ids = {stop};
  const auto first = static_cast<std::size_t>(std::find(free[1].tokens.begin(), free[1].tokens.end(), stop) -
                                              free[1].tokens.begin());
  const Generation s = generate_items(*m, p, {1}, {}).front();
  EXPECT_EQ(s.stop, Generation::Stop::StopToken);
  EXPECT_EQ(s.tokens, std::vector<std::int32_t>(free[1].tokens.begin(), free[1].tokens.begin() + static_cast<std::ptrdiff_t>(first)));
  expect_matches_naive(*m, p, {}, max_len);
  // max_gen_toks 1: one token each.
  p.generation.stop_token_ids.clear();
  p.generation.max_gen_toks = 1;
  for (const auto& x : generate_items(*m, p, all_items(p), {})) EXPECT_EQ(x.tokens.size(), 1u);
}

TEST(Generate, StripLeadingSpaceAsSentencePiece) {
  const auto m = load("llama_untied");
  TaskPack p = gen_pack(m->config().vocab_size, 4, 2, 12, 6, 13);
  for (std::size_t t = 1; t < p.generation.token_bytes.size(); ++t) p.generation.token_bytes[t] = " w" + std::to_string(t);
  p.generation.strip_leading_space = true;
  p.generation.until = {" w7"};
  expect_matches_naive(*m, p, {}, m->config().max_position_embeddings);
  const auto g = generate_items(*m, p, {0}, {}).front();
  if (!g.tokens.empty() && g.stop != Generation::Stop::Until) {
    EXPECT_EQ(g.text.rfind('w', 0), 0u);  // no leading space
  }
}

TEST(Generate, TextAsPython) {
  // Expected values printed by Python 3: bytes.decode("utf-8", errors="replace").
  EXPECT_EQ(utf8_lossy("ab\xE2\x82\xAC"), "ab\xE2\x82\xAC");            // '€' whole
  EXPECT_EQ(utf8_lossy("\xE2\x82" "A"), "\xEF\xBF\xBD" "A");               // truncated: one U+FFFD
  EXPECT_EQ(utf8_lossy("\xE2\x82"), "\xEF\xBF\xBD");                       // truncated at the end
  EXPECT_EQ(utf8_lossy("\xF0\x80\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong: each byte
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate: each byte
  EXPECT_EQ(utf8_lossy("\xC0\xAF" "x"), "\xEF\xBF\xBD\xEF\xBF\xBD" "x");
  EXPECT_EQ(utf8_lossy("\xF4\x90\x80\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // > U+10FFFF
  EXPECT_EQ(utf8_lossy("\xF0\x9F\x98"), "\xEF\xBF\xBD");                   // 3 of 4 bytes
  // lm-eval cuts term after term: "xabc" with ["bc", "ab"] is "xa" (earliest-first would give "x").
  GenerationSpec s;
  s.token_bytes = {"", "x", "ab", "c"};
  s.until = {"bc", "ab"};
  EXPECT_EQ(generation_text(s, {1, 2, 3}), "xa");
  EXPECT_EQ(generation_text(s, {1, 2}), "x");
  s.strip_leading_space = true;
  s.token_bytes[1] = " x";
  EXPECT_EQ(decoded_text(s, {1, 1}), "x x");
  // SentencePiece byte fallback (tokenizers' ByteFallback): a run of byte tokens that is not valid
  // UTF-8 is one U+FFFD per token; a valid run is its character; plain bytes as above.
  GenerationSpec b;
  b.token_bytes = {"", "\xE2", "\x82", "\xAC", "A", "\xE2\x82"};
  b.token_is_byte = {0, 1, 1, 1, 0, 0};
  EXPECT_EQ(decoded_text(b, {1, 2, 4}), "\xEF\xBF\xBD\xEF\xBF\xBD" "A");
  EXPECT_EQ(decoded_text(b, {1, 2, 0, 3, 4}), "\xE2\x82\xAC" "A");  // an empty token interrupts nothing
  EXPECT_EQ(decoded_text(b, {5, 4}), "\xEF\xBF\xBD" "A");
  EXPECT_EQ(decoded_text(b, {4, 1, 2, 3, 1}), "A\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(Generate, ChecksNameTheProblem) {
  const auto m = load("llama_untied");
  const TaskPack good = gen_pack(m->config().vocab_size, 2, 2, 5, 4, 17);
  auto expect_error = [&](TaskPack p, const std::string& part, ScoreOptions o = {}) {
    p.path = "pack.h5";
    try {
      generate_items(*m, p, {0}, o);
      ADD_FAILURE() << "no error for " << part;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  TaskPack p = good;
  p.vocab_size = 100;
  p.generation.token_bytes.pop_back();
  expect_error(p, "the pack has 100 ids, the model 101");
  p = good;
  p.generation.token_bytes.pop_back();
  expect_error(p, "one per id expected");
  p = good;
  p.generation.max_gen_toks = 0;
  expect_error(p, "must be > 0");
  p = good;
  p.generation.until = {"a", ""};
  expect_error(p, "an empty stop string");
  p = good;
  p.items[0].context.clear();
  expect_error(p, "item 0: an empty prompt");
  ScoreOptions o;
  o.max_length = 4;
  expect_error(good, "leave no room for the prompt in max_length 4", o);
  p = good;
  p.output_type = OutputType::MultipleChoice;
  expect_error(p, "needs a generate_until pack");
}


TEST(Generate, EvaluateAGroupOfTwoRanksReportsWhatOneRankDoes) {
  const auto m = load("mistral");
  TaskPack p = gen_pack(m->config().vocab_size, 13, 2, 30, 7, 19);
  p.generation.until = {"<4"};
  EvalOptions o;
  o.score.batch_tokens = 120;  // several blocks
  const EvalResult one = evaluate(*m, {p}, {}, o);
  ASSERT_EQ(one.tasks.size(), 1u);
  EXPECT_EQ(one.tasks[0].output_type, OutputType::GenerateUntil);
  EXPECT_EQ(one.tasks[0].tally.n, 13);
  ASSERT_EQ(one.tasks[0].generations.size(), 13u);
  std::int64_t generated = 0;
  for (std::size_t i = 0; i < p.items.size(); ++i) {
    expect_same(one.tasks[0].generations[i], naive(*m, p, i, m->config().max_position_embeddings), "item " + std::to_string(i));
    generated += static_cast<std::int64_t>(one.tasks[0].generations[i].tokens.size());
  }
  EXPECT_EQ(one.tasks[0].tokens, generated);
  const auto two = test_util::evaluate_as_two_ranks(*m, {p}, {}, o);
  for (const EvalResult& r : two) {
    EXPECT_EQ(r.tasks[0].tally.n, 13);
    ASSERT_EQ(r.tasks[0].generations.size(), 13u);
    for (std::size_t i = 0; i < 13; ++i) expect_same(r.tasks[0].generations[i], one.tasks[0].generations[i], "rank item");
  }
  EXPECT_GT(two[0].tasks[0].tokens, 0);
  EXPECT_GT(two[1].tasks[0].tokens, 0);
  EXPECT_EQ(two[0].tasks[0].tokens + two[1].tasks[0].tokens, one.tasks[0].tokens);
  // A stop request ends it between rounds, without generations.
  int rounds = 0;
  EvalShare s;
  s.stop = [&] { return ++rounds == 2; };
  const EvalResult stopped = evaluate(*m, {p}, {}, o, s);
  EXPECT_TRUE(stopped.stopped);
  EXPECT_TRUE(stopped.tasks[0].generations.empty());
}

TEST(Generate, EvalVerbTableJsonAndGenerationsFile) {
  // A pack written and read back (format 2, with doc ids), run by `mergesweep eval`: the table
  // shows n and gen_tokens/s; --json and --generations hold what the library generates.
  test::TempDir tmp;
  const std::string model = "tests/fixtures/model/llama_untied";
  const auto m = load("llama_untied");
  TaskPack p = gen_pack(m->config().vocab_size, 5, 2, 15, 6, 23);
  p.name = "gen_cli";
  p.generation.until = {"<1"};
  p.generation.doc_ids = {10, 11, 12, 13, 14};
  write_task_pack(tmp / "gen.h5", p);
  const TaskPack back = read_task_pack(tmp / "gen.h5");
  EXPECT_EQ(back.generation.doc_ids, p.generation.doc_ids);
  const auto r = test::run_cli("eval " + model + " --tasks '" + (tmp / "gen.h5") + "' --json '" + (tmp / "r.json") +
                                   "' --generations '" + (tmp / "g.jsonl") + "'",
                               MS_SOURCE_DIR);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("gen_tokens/s"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("generated tokens/s"), std::string::npos) << r.err;
  const auto want = generate_items(*m, back, all_items(back), {});
  const auto j = nlohmann::json::parse(test::read_file(tmp / "r.json"))["results"]["gen_cli"];
  EXPECT_EQ(j["n"].get<std::int64_t>(), 5);
  EXPECT_EQ(j["output_type"].get<std::string>(), "generate_until");
  std::istringstream lines(test::read_file(tmp / "g.jsonl"));
  std::string line;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const auto& g = j["generations"][i];
    EXPECT_EQ(g["text"].get<std::string>(), want[i].text) << i;
    EXPECT_EQ(g["tokens"].get<std::vector<std::int32_t>>(), want[i].tokens) << i;
    EXPECT_EQ(g["stop"].get<std::string>(), stop_name(want[i].stop)) << i;
    ASSERT_TRUE(std::getline(lines, line));
    const auto l = nlohmann::json::parse(line);
    EXPECT_EQ(l["task"].get<std::string>(), "gen_cli");
    EXPECT_EQ(l["item"].get<std::size_t>(), i);
    EXPECT_EQ(l["doc_id"].get<std::int64_t>(), 10 + static_cast<std::int64_t>(i));
    EXPECT_EQ(l["text"].get<std::string>(), want[i].text);
    EXPECT_EQ(l["tokens"].get<std::vector<std::int32_t>>(), want[i].tokens);
  }
  EXPECT_FALSE(std::getline(lines, line));
}

}  // namespace
}  // namespace ms::eval
