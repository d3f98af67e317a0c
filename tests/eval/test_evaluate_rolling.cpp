// loglikelihood_rolling through eval::evaluate: documents cut into lm-eval's rolling windows
// (get_rolling_token_windows + make_disjoint_window, written out below); each document's
// log-likelihood is the sum of its windows' naive lm-eval scores; the metrics are lm-eval's
// weighted perplexities; a group of two ranks gives bitwise what one rank does; a pack cut for
// another max_length is refused; `mergesweep eval` shows the metrics and --limit counts documents.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/test_util.hpp"
#include "eval_test_util.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/eval/evaluate.hpp"
#include "mergesweep/model/decoder.hpp"

namespace ms::eval {
namespace {

using test_util::Lcg;
using Ids = std::vector<std::int32_t>;

// lm-eval's utils.get_rolling_token_windows(context_len=1) followed by make_disjoint_window.
std::vector<std::pair<Ids, Ids>> rolling_windows(const Ids& tokens, std::int32_t prefix, std::size_t max_len) {
  std::vector<std::pair<Ids, Ids>> out;
  if (tokens.empty()) return out;
  const std::size_t first = std::min(max_len, tokens.size());
  out.push_back({{prefix}, Ids(tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(first))});
  for (std::size_t predicted = first; predicted < tokens.size();) {
    const std::size_t len = std::min(tokens.size() - predicted, max_len), end = predicted + len;
    const auto at = [&](std::size_t i) { return tokens.begin() + static_cast<std::ptrdiff_t>(i); };
    Ids a(at(end - max_len - 1), at(end - 1)), b(at(end - len), at(end));
    a.resize(a.size() - (b.size() - 1));  // make_disjoint_window
    out.push_back({a, b});
    predicted += len;
  }
  return out;
}

// `docs` documents of 1..90 tokens cut for max_length `max_len`, one item per window.
TaskPack rolling_pack(std::int64_t vocab, int docs, std::int64_t max_len, std::uint64_t seed) {
  Lcg g{seed};
  TaskPack p;
  p.name = "rolling";
  p.output_type = OutputType::LoglikelihoodRolling;
  p.vocab_size = vocab;
  p.rolling_max_length = max_len;
  for (int d = 0; d < docs; ++d) {
    Ids tokens;
    for (int t = 0, n = 1 + g.next(90); t < n; ++t) tokens.push_back(1 + g.next(static_cast<std::int32_t>(vocab - 1)));
    for (auto& [ctx, cont] : rolling_windows(tokens, 0, static_cast<std::size_t>(max_len))) {
      TaskItem it;
      it.context = ctx;
      it.choices.push_back({cont, 0, 0, {}});
      it.doc = d;
      p.items.push_back(it);
    }
    p.docs.push_back({1 + g.next(20), static_cast<std::int64_t>(tokens.size()) * 3});
  }
  return p;
}

EvalOptions options(std::int64_t max_len) {
  EvalOptions o;
  o.score.max_length = max_len;
  o.score.batch_tokens = 100;  // several blocks
  return o;
}

TEST(EvaluateRolling, DocumentLoglikIsTheSumOfItsWindowsAndMetricsAreLmEvals) {
  const auto m = model::Decoder::load(test::source_path("tests/fixtures/model/qwen2"), at::kFloat);
  const TaskPack p = rolling_pack(m->config().vocab_size, 9, 20, 3);
  ASSERT_GT(p.items.size(), 20u);  // documents longer than 20 tokens make several windows
  for (const bool packed : {true, false}) {
    EvalOptions o = options(20);
    o.score.packed = packed;
    const EvalResult r = evaluate(*m, {p}, {}, o);
    ASSERT_EQ(r.tasks.size(), 1u);
    const TaskResult& t = r.tasks[0];
    EXPECT_EQ(t.output_type, OutputType::LoglikelihoodRolling);
    ASSERT_EQ(t.doc_loglik.size(), p.docs.size());
    std::vector<double> want(p.docs.size(), 0.0);
    for (const auto& it : p.items)
      want[static_cast<std::size_t>(it.doc)] +=
          test_util::naive_loglik(*m, it.context, it.choices[0].continuation, 20).first;
    double ll = 0, words = 0, bytes = 0;
    for (std::size_t d = 0; d < p.docs.size(); ++d) {
      EXPECT_NEAR(t.doc_loglik[d], want[d], 1e-4 + 1e-5 * std::abs(want[d])) << "doc " << d;
      ll += t.doc_loglik[d];
      words += static_cast<double>(p.docs[d].words);
      bytes += static_cast<double>(p.docs[d].bytes);
    }
    ASSERT_EQ(t.rolling_metrics.size(), 3u);
    EXPECT_EQ(t.rolling_metrics[0].name, "word_perplexity");
    EXPECT_DOUBLE_EQ(t.rolling_metrics[0].value, std::exp(-ll / words));
    EXPECT_EQ(t.rolling_metrics[1].name, "byte_perplexity");
    EXPECT_DOUBLE_EQ(t.rolling_metrics[1].value, std::exp(-ll / bytes));
    EXPECT_EQ(t.rolling_metrics[2].name, "bits_per_byte");
    EXPECT_DOUBLE_EQ(t.rolling_metrics[2].value, -ll / bytes / std::log(2.0));
    EXPECT_TRUE(std::isnan(t.rolling_metrics[0].stderr_));
  }
}

TEST(EvaluateRolling, AGroupOfTwoRanksGivesTheSameBits) {
  const auto m = model::Decoder::load(test::source_path("tests/fixtures/model/qwen2"), at::kFloat);
  const TaskPack p = rolling_pack(m->config().vocab_size, 7, 16, 5);
  const EvalOptions o = options(16);
  const EvalResult one = evaluate(*m, {p}, {}, o);
  const auto two = test_util::evaluate_as_two_ranks(*m, {p}, {}, o);
  for (const EvalResult& r : two) {
    EXPECT_EQ(r.tasks[0].doc_loglik, one.tasks[0].doc_loglik);  // bitwise
    for (std::size_t k = 0; k < 3; ++k)
      EXPECT_EQ(r.tasks[0].rolling_metrics[k].value, one.tasks[0].rolling_metrics[k].value);
  }
  EXPECT_GT(two[0].tasks[0].tokens, 0);
  EXPECT_GT(two[1].tasks[0].tokens, 0);
}

TEST(EvaluateRolling, APackCutForAnotherMaxLengthIsRefused) {
  const auto m = model::Decoder::load(test::source_path("tests/fixtures/model/qwen2"), at::kFloat);
  TaskPack p = rolling_pack(m->config().vocab_size, 3, 20, 7);
  p.path = "wiki.h5";
  TaskPack first;  // a multiple-choice pack before it: refused before anything is scored
  first.vocab_size = p.vocab_size;
  first.items.push_back({{1, 2}, {{{3}, 1, 1, {}}}, 0, 0});
  int rounds = 0;
  try {
    evaluate(*m, {first, p}, {}, options(0), {}, [&](const TaskResult&, std::size_t, std::size_t) { ++rounds; });
    FAIL() << "scored a pack cut for another max_length";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("wiki.h5"), std::string::npos) << what;
    EXPECT_NE(what.find("max_length 20"), std::string::npos) << what;
    const std::string model_max = "max_length " + std::to_string(m->config().max_position_embeddings);
    EXPECT_NE(what.find(model_max), std::string::npos) << what;
  }
  EXPECT_EQ(rounds, 0);
}

TEST(EvaluateRolling, EvalVerbShowsTheMetricsAndLimitsDocuments) {
  const std::string dir = "tests/fixtures/lmeval_wino_roll_spm";
  test::TempDir tmp;
  const auto r = test::run_cli("eval " + dir + "/model --tasks " + dir + "/ms_roll.h5 " + dir + "/ms_wino.h5 --json '" +
                                   (tmp / "r.json") + "' --limit 4",
                               MS_SOURCE_DIR);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* m : {"word_perplexity", "byte_perplexity", "bits_per_byte", "acc_norm"})
    EXPECT_NE(r.out.find(m), std::string::npos) << m << "\n" << r.out;
  const auto j = nlohmann::json::parse(test::read_file(tmp / "r.json"));
  const auto& roll = j["results"]["ms_roll"];
  EXPECT_EQ(roll["output_type"], "loglikelihood_rolling");
  EXPECT_EQ(roll["n"].get<std::int64_t>(), 4);  // documents, not windows
  EXPECT_EQ(roll["word_perplexity_stderr"], "N/A");
  // The first 4 documents whole, as evaluate() scores them.
  TaskPack pack = read_task_pack(test::source_path(dir + "/ms_roll.h5"));
  pack.docs.resize(4);
  std::size_t keep = 0;
  while (keep < pack.items.size() && pack.items[keep].doc < 4) ++keep;
  pack.items.resize(keep);
  EXPECT_EQ(roll["windows"].get<std::size_t>(), keep);
  const auto model = model::Decoder::load(test::source_path(dir + "/model"), at::kFloat);
  const EvalResult want = evaluate(*model, {pack}, {}, {});
  for (const auto& m : want.tasks[0].rolling_metrics) EXPECT_EQ(roll[m.name].get<double>(), m.value) << m.name;
  EXPECT_EQ(j["results"]["ms_wino"]["n"].get<std::int64_t>(), 4);
}

}  // namespace
}  // namespace ms::eval
