// io::check_family, the one compatibility check: what it accepts, what it refuses, and that each
// refusal names the file, the tensor, what was expected and what was found.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <map>

#include "common/test_util.hpp"
#include "mergesweep/io/family_check.hpp"
#include "mergesweep/io/hf_config.hpp"
#include "mergesweep/io/hf_model.hpp"

namespace ms::io {
namespace {

// A model folder holding exactly `tensors` (a Llama config; the check reads only the tensors).
void write_model(const std::string& dir, const std::map<std::string, at::Tensor>& tensors) {
  std::vector<TensorSpec> specs;
  for (const auto& [name, t] : tensors) {
    const DType d = t.scalar_type() == at::kBFloat16 ? DType::BF16
                    : t.scalar_type() == at::kHalf   ? DType::F16
                    : t.scalar_type() == at::kLong   ? DType::I64
                                                     : DType::F32;
    specs.push_back({name, d, std::vector<std::int64_t>(t.sizes().begin(), t.sizes().end())});
  }
  HfModelWriter w(dir, specs, 1'000'000'000ull);
  LlamaConfigFields c;
  c.hidden = 8, c.intermediate = 16, c.layers = 1, c.heads = 2, c.kv_heads = 2, c.vocab = 32;
  w.set_config_text(llama_config_json(c));
  for (const auto& [name, t] : tensors) w.write(name, t.contiguous());
  w.commit();
}

std::map<std::string, at::Tensor> base_tensors() {
  return {{"model.embed_tokens.weight", at::ones({32, 8})},
          {"model.norm.weight", at::ones({8})},
          {"lm_head.weight", at::ones({32, 8})}};
}

class FamilyCheck : public ::testing::Test {
 protected:
  void SetUp() override { write_model(dir_ / "base", base_tensors()); }
  // Writes a checkpoint changed by `edit` and returns the check's error text ("<no error>" if none).
  std::string refusal(const std::function<void(std::map<std::string, at::Tensor>&)>& edit) {
    auto t = base_tensors();
    edit(t);
    const std::string ck = dir_ / ("ck" + std::to_string(++n_));
    write_model(ck, t);
    return test::error_of([&] { check_family(dir_ / "base", {ck}, {"checkpoints[0]"}); });
  }
  test::TempDir dir_;
  int n_ = 0;
};

TEST_F(FamilyCheck, AcceptsMixedFloatDtypesAndMarksThemWidened) {
  auto t = base_tensors();
  t["model.embed_tokens.weight"] = t["model.embed_tokens.weight"].to(at::kBFloat16);
  t["lm_head.weight"] = t["lm_head.weight"].to(at::kHalf);
  t["model.layers.0.self_attn.rotary_emb.inv_freq"] = at::ones({4});  // a known extra buffer
  write_model(dir_ / "ck", t);
  const FamilyReport r = check_family(dir_ / "base", {dir_ / "ck"});
  ASSERT_EQ(r.checkpoints.size(), 1u);
  EXPECT_EQ(r.checkpoints[0].widened, 2u);
  EXPECT_EQ(r.checkpoints[0].ignored, 1u);
  EXPECT_EQ(r.checkpoints[0].vocab_rows, 32);
  EXPECT_FALSE(r.checkpoints[0].tied_head);
  EXPECT_EQ(r.tensor_names.size(), 3u);
  // Held bytes per tensor: f32 base + the checkpoint's own dtype (bf16 embedding: 2 bytes a value).
  EXPECT_EQ(r.held_bytes[0], 32u * 8 * 4 + 32u * 8 * 2);
  EXPECT_NE(r.checkpoints[0].treatment().find("widened to float32 (2 tensors)"), std::string::npos);
}

TEST_F(FamilyCheck, RefusesAnAddedVocabularyWithBothShapes) {
  const std::string e = refusal([](auto& t) { t["model.embed_tokens.weight"] = at::ones({35, 8}); });
  EXPECT_NE(e.find("model.embed_tokens.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("shape [35, 8] differs from the base's [32, 8]"), std::string::npos) << e;
  EXPECT_NE(e.find("35 rows against the base's 32"), std::string::npos) << e;
  EXPECT_NE(e.find("checkpoints[0]"), std::string::npos) << e;
  EXPECT_NE(e.find("model.safetensors"), std::string::npos) << e;  // the file
}

TEST_F(FamilyCheck, RefusesAMissingOrExtraTensorByName) {
  std::string e = refusal([](auto& t) { t.erase("model.norm.weight"); });
  EXPECT_NE(e.find("model.norm.weight: tensor of the base"), std::string::npos) << e;
  EXPECT_NE(e.find("F32 [8]"), std::string::npos) << e;
  e = refusal([](auto& t) { t["model.extra.weight"] = at::ones({2}); });
  EXPECT_NE(e.find("model.extra.weight: tensor (F32 [2]) is not in the base"), std::string::npos) << e;
}

TEST_F(FamilyCheck, RefusesADtypeNoKernelReads) {
  const std::string e = refusal([](auto& t) { t["model.norm.weight"] = at::ones({8}, at::kLong); });
  EXPECT_NE(e.find("model.norm.weight: dtype I64 cannot be merged"), std::string::npos) << e;
}

TEST_F(FamilyCheck, RefusesAPathThatDoesNotExist) {
  const std::string e = test::error_of([&] { check_family(dir_ / "base", {dir_ / "nope"}, {"checkpoints[0]"}); });
  EXPECT_NE(e.find("nope: checkpoints[0]: no such model folder"), std::string::npos) << e;
}

// transformers' semantics: a tied model's head is its input embedding.
TEST_F(FamilyCheck, ATiedCheckpointContributesItsEmbeddingAsItsHead) {
  auto t = base_tensors();
  t.erase("lm_head.weight");
  write_model(dir_ / "tied", t);
  const FamilyReport r = check_family(dir_ / "base", {dir_ / "tied"});
  EXPECT_TRUE(r.checkpoints[0].tied_head);
  EXPECT_TRUE(r.checkpoints[0].head_from_embedding);
  EXPECT_FALSE(r.unties_head);
  EXPECT_NE(r.checkpoints[0].treatment().find("tied head"), std::string::npos);
  // The reverse (a tied base, a checkpoint with its own head): the merge gains an lm_head.
  write_model(dir_ / "tied-base", t);
  const FamilyReport u = check_family(dir_ / "tied-base", {dir_ / "base"});
  EXPECT_TRUE(u.unties_head);
  EXPECT_EQ(u.tensor_names, (std::vector<std::string>{"lm_head.weight", "model.embed_tokens.weight", "model.norm.weight"}));
}

TEST_F(FamilyCheck, StripsPeftsPrefixWhenEveryTensorCarriesIt) {
  std::map<std::string, at::Tensor> prefixed;
  for (const auto& [name, t] : base_tensors()) prefixed["base_model.model." + name] = t * 2;
  write_model(dir_ / "peft", prefixed);
  const FamilyReport r = check_family(dir_ / "base", {dir_ / "peft"});
  EXPECT_TRUE(r.checkpoints[0].peft_prefix_stripped);
  EXPECT_NE(r.checkpoints[0].treatment().find("PEFT prefix"), std::string::npos);
  const HfModel m = HfModel::open(dir_ / "peft");
  EXPECT_EQ(m.stripped_prefix(), "base_model.model.");
  EXPECT_TRUE(at::equal(m.tensor("model.norm.weight"), at::full({8}, 2.0f)));  // read through the stored name
  // Only some tensors prefixed: not a PEFT export, the names are refused as they are.
  const std::string e = refusal([](auto& t) {
    t["base_model.model.model.norm.weight"] = t["model.norm.weight"];
    t.erase("model.norm.weight");
  });
  EXPECT_NE(e.find("model.norm.weight: tensor of the base"), std::string::npos) << e;
}

}  // namespace
}  // namespace ms::io
