#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "common/test_util.hpp"
#include "mergesweep/io/integrity.hpp"

namespace ms::io {
namespace {

TEST(Integrity, CountsNonFiniteInEveryFloatFormat) {
  const float f32[] = {1.0f, std::numeric_limits<float>::infinity(), std::nanf(""), -2.0f};
  EXPECT_EQ(count_non_finite(DType::F32, reinterpret_cast<const std::uint8_t*>(f32), sizeof f32), 2u);
  const double f64[] = {1.0, -std::numeric_limits<double>::infinity()};
  EXPECT_EQ(count_non_finite(DType::F64, reinterpret_cast<const std::uint8_t*>(f64), sizeof f64), 1u);
  const std::uint16_t bf16[] = {0x3F80 /*1*/, 0x7F80 /*inf*/, 0xFFC1 /*nan*/, 0x7F7F /*max*/};
  EXPECT_EQ(count_non_finite(DType::BF16, reinterpret_cast<const std::uint8_t*>(bf16), sizeof bf16), 2u);
  const std::uint16_t f16[] = {0x3C00 /*1*/, 0x7C00 /*inf*/, 0x7BFF /*max*/};
  EXPECT_EQ(count_non_finite(DType::F16, reinterpret_cast<const std::uint8_t*>(f16), sizeof f16), 1u);
  const std::uint8_t e4m3[] = {0x7F /*nan*/, 0x7E /*448*/, 0xFF /*nan*/};
  EXPECT_EQ(count_non_finite(DType::F8_E4M3, e4m3, sizeof e4m3), 2u);
  const std::uint8_t e5m2[] = {0x7C /*inf*/, 0x7B /*max*/};
  EXPECT_EQ(count_non_finite(DType::F8_E5M2, e5m2, sizeof e5m2), 1u);
  const std::int32_t i32[] = {0x7F800000};
  EXPECT_EQ(count_non_finite(DType::I32, reinterpret_cast<const std::uint8_t*>(i32), sizeof i32), 0u);
}

const char* kLlama = R"({"model_type":"llama","hidden_size":4,"intermediate_size":8,"num_hidden_layers":1,
  "num_attention_heads":2,"vocab_size":6,"tie_word_embeddings":true})";

void write_model(const std::string& dir, std::int64_t vocab, float fill) {
  std::vector<TensorSpec> specs = {{"model.embed_tokens.weight", DType::F32, {vocab, 4}},
                                   {"model.norm.weight", DType::F32, {4}},
                                   {"model.layers.0.input_layernorm.weight", DType::F32, {4}}};
  HfModelWriter w(dir, specs, 1 << 20);
  std::vector<float> emb(vocab * 4, 0.5f), norm(4, 1.0f);
  norm[2] = fill;
  w.write("model.embed_tokens.weight", emb.data(), emb.size() * 4);
  w.write("model.norm.weight", norm.data(), 16);
  w.write("model.layers.0.input_layernorm.weight", norm.data(), 16);
  w.set_config_text(kLlama);
  w.commit();
}

TEST(Integrity, AcceptsAConsistentModel) {
  test::TempDir tmp;
  write_model(tmp / "m", 6, 1.0f);
  const auto r = check_integrity(HfModel::open(tmp / "m"), true);
  EXPECT_TRUE(r.ok()) << r.problems.front();
  EXPECT_EQ(r.values_scanned, 6u * 4 + 8);
}

TEST(Integrity, FindsShapesThatContradictTheConfig) {
  test::TempDir tmp;
  write_model(tmp / "m", 7, 1.0f);
  const auto r = check_integrity(HfModel::open(tmp / "m"), false);
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_NE(r.problems[0].find("'model.embed_tokens.weight': shape [7, 4] does not match config.json, expected [6, 4]"),
            std::string::npos);
}

TEST(Integrity, FindsNaNOnlyWhenScanningValues) {
  test::TempDir tmp;
  write_model(tmp / "m", 6, std::nanf(""));
  const auto m = HfModel::open(tmp / "m");
  EXPECT_TRUE(check_integrity(m, false).ok());
  const auto r = check_integrity(m, true);
  ASSERT_EQ(r.problems.size(), 2u);
  EXPECT_NE(r.problems[0].find("1 of 4 values are NaN or Inf"), std::string::npos);
}

}  // namespace
}  // namespace ms::io
