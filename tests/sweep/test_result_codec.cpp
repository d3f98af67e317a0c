// The report a group leader sends rank 0 (result_codec): every field of a config's rows arrives
// bit for bit, generations included (token ids, response bytes with NUL and invalid UTF-8, empty
// ones), rolling metrics' NaN stderr as NaN.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "mergesweep/sweep/result_codec.hpp"

namespace ms::sweep {
namespace {

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

archive::ConfigResult sample_result() {
  archive::ConfigResult r;
  const std::uint64_t id = 0xFEDCBA9876543210ull;  // above 2^63: kept as uint64
  r.config = {id, "merge", "ties", "density=0.1,lambda=1", 3, 7, {1, 4, 9}};
  r.results.push_back({id, "arc", "acc", 0.1 + 0.2, 0.0123456789012345, 100});
  r.results.push_back({id, "wikitext", "word_perplexity", 37.25000000000001, std::nan(""), 62});
  r.results.push_back({id, "wikitext", "bits_per_byte", 1.0 / 3.0, std::nan(""), 62});
  archive::ModelStatRecord s;
  s.config_id = id;
  s.l2_from_base = 1e-300;
  s.cos_mean = -0.0;
  s.l2_by_kind = {{"attn", 2.5}, {"mlp", std::numeric_limits<double>::denorm_min()}};
  r.stats.push_back(s);
  r.probes.push_back({id, "holmes_pos", 3, 0.75, std::nan(""), 5});
  r.timing = {id, 1.5, 2.25, 0.125, 3.875, 2};
  r.generations.push_back({id, "gsm8k", 0, "until", {15, 3, 99999}, "The answer is 42.\n\n"});
  r.generations.push_back({id, "gsm8k", 1, "length", {}, ""});
  r.generations.push_back({id, "gsm8k", 2, "stop_token", {0, 7}, std::string("a\0b\xff\xfe\xc3", 6)});
  archive::ItemOutcomes mc;
  mc.config_id = id;
  mc.task = "arc";
  mc.kind = "choice";
  mc.outcome = {0, 1, 3, 15, 7};
  mc.chosen = {2, 0, 1, 1, 3};
  mc.gold_loglik = {-1.5f, -0.0f, std::nanf(""), -1e-30f, -123.456f};
  r.items.push_back(mc);
  archive::ItemOutcomes roll;
  roll.config_id = id;
  roll.task = "wikitext";
  roll.kind = "rolling";
  roll.doc_loglik = {-1234.5678901234567, -0.1};
  roll.doc_tokens = {700, 3};
  roll.doc_words = {500, 2};
  roll.doc_bytes = {2800, 9};
  r.items.push_back(roll);
  r.fingerprints.push_back({id, 0xfedcba9876543210ULL, "bfloat16"});  // the top bit set: a full uint64
  return r;
}

TEST(ResultCodec, RoundTripKeepsEveryFieldBitForBit) {
  const archive::ConfigResult a = sample_result();
  const archive::ConfigResult b = decode_result(encode_result(a));
  EXPECT_EQ(b.config.id, a.config.id);
  EXPECT_EQ(b.config.kind, a.config.kind);
  EXPECT_EQ(b.config.method, a.config.method);
  EXPECT_EQ(b.config.params, a.config.params);
  EXPECT_EQ(b.config.n, a.config.n);
  EXPECT_EQ(b.config.sample, a.config.sample);
  EXPECT_EQ(b.config.members, a.config.members);
  ASSERT_EQ(b.results.size(), a.results.size());
  for (std::size_t i = 0; i < a.results.size(); ++i) {
    EXPECT_EQ(b.results[i].config_id, a.results[i].config_id);
    EXPECT_EQ(b.results[i].task, a.results[i].task);
    EXPECT_EQ(b.results[i].metric, a.results[i].metric);
    EXPECT_TRUE(same_bits(b.results[i].value, a.results[i].value)) << i;
    EXPECT_TRUE(same_bits(b.results[i].stderr_, a.results[i].stderr_) ||
                (std::isnan(b.results[i].stderr_) && std::isnan(a.results[i].stderr_)))
        << i;
    EXPECT_EQ(b.results[i].n, a.results[i].n);
  }
  ASSERT_EQ(b.stats.size(), 1u);
  EXPECT_TRUE(same_bits(b.stats[0].l2_from_base, a.stats[0].l2_from_base));
  EXPECT_TRUE(same_bits(b.stats[0].cos_mean, a.stats[0].cos_mean)) << "-0.0 stays negative zero";
  EXPECT_EQ(b.stats[0].l2_by_kind, a.stats[0].l2_by_kind);
  ASSERT_EQ(b.probes.size(), 1u);
  EXPECT_TRUE(std::isnan(b.probes[0].f1_std));
  EXPECT_EQ(b.timing.group, 2);
  EXPECT_TRUE(same_bits(b.timing.total_s, 3.875));
  ASSERT_EQ(b.generations.size(), a.generations.size());
  for (std::size_t i = 0; i < a.generations.size(); ++i) {
    const auto &x = b.generations[i], &y = a.generations[i];
    EXPECT_EQ(x.config_id, y.config_id);
    EXPECT_EQ(x.task, y.task);
    EXPECT_EQ(x.item, y.item);
    EXPECT_EQ(x.stop, y.stop);
    EXPECT_EQ(x.tokens, y.tokens);
    EXPECT_EQ(x.text, y.text) << "item " << i;
  }
  EXPECT_EQ(b.generations[2].text.size(), 6u) << "NUL and invalid UTF-8 bytes arrive unchanged";
  ASSERT_EQ(b.items.size(), 2u);
  for (std::size_t k = 0; k < 2; ++k) {
    const auto &x = b.items[k], &y = a.items[k];
    EXPECT_EQ(x.config_id, y.config_id);
    EXPECT_EQ(x.task, y.task);
    EXPECT_EQ(x.kind, y.kind);
    EXPECT_EQ(x.outcome, y.outcome);
    EXPECT_EQ(x.chosen, y.chosen);
    ASSERT_EQ(x.gold_loglik.size(), y.gold_loglik.size());
    if (!y.gold_loglik.empty()) {  // memcmp of an empty vector's null data() is undefined
      EXPECT_EQ(std::memcmp(x.gold_loglik.data(), y.gold_loglik.data(), y.gold_loglik.size() * sizeof(float)), 0)
          << "float32 bits (NaN, -0) arrive unchanged";
    }
    ASSERT_EQ(x.doc_loglik.size(), y.doc_loglik.size());
    for (std::size_t d = 0; d < y.doc_loglik.size(); ++d) EXPECT_TRUE(same_bits(x.doc_loglik[d], y.doc_loglik[d]));
    EXPECT_EQ(x.doc_tokens, y.doc_tokens);
    EXPECT_EQ(x.doc_words, y.doc_words);
    EXPECT_EQ(x.doc_bytes, y.doc_bytes);
  }
  ASSERT_EQ(b.fingerprints.size(), 1u);
  EXPECT_EQ(b.fingerprints[0].config_id, a.fingerprints[0].config_id);
  EXPECT_EQ(b.fingerprints[0].fingerprint, a.fingerprints[0].fingerprint);
  EXPECT_EQ(b.fingerprints[0].dtype, a.fingerprints[0].dtype);
}

TEST(ResultCodec, AConfigWithoutGenerationsDecodesToNone) {
  archive::ConfigResult a = sample_result();
  a.generations.clear();
  EXPECT_TRUE(decode_result(encode_result(a)).generations.empty());
}

TEST(ResultCodec, ATruncatedReportIsAnError) {
  auto bytes = encode_result(sample_result());
  bytes.resize(bytes.size() / 2);
  EXPECT_ANY_THROW(decode_result(bytes));
}

}  // namespace
}  // namespace ms::sweep
