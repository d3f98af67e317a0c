// PEFT LoRA adapters folded into their base, against fixtures made by peft itself
// (tests/fixtures/lora/make_lora_fixtures.py: merge_and_unload on a small Llama and Qwen2, plain
// LoRA, rsLoRA with rank/alpha patterns and modules_to_save, an embedding LoRA); bad adapters are
// refused by name and leave nothing behind; adapters are checkpoints in merge YAML and sweep specs.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/test_util.hpp"
#include "mergesweep/io/fs_util.hpp"
#include "mergesweep/io/hf_model.hpp"
#include "mergesweep/io/lora_adapter.hpp"

namespace ms::io {
namespace {

namespace fs = std::filesystem;

std::string fixture(const std::string& rel) { return test::source_path("tests/fixtures/" + rel); }

// The model fixture a LoRA case was made on (its base.txt).
std::string base_of(const std::string& c) {
  const std::string name = test::read_file(fixture("lora/" + c + "/base.txt"));
  return fixture("model/" + name.substr(0, name.find('\n')));
}

class Lora : public ::testing::Test {
 protected:
  void SetUp() override { setenv("MS_CACHE_DIR", (dir_ / "cache").c_str(), 1); }
  void TearDown() override { unsetenv("MS_CACHE_DIR"); }
  std::size_t cache_entries() const {
    if (!fs::exists(dir_ / "cache/folded")) return 0;
    return static_cast<std::size_t>(std::distance(fs::directory_iterator(dir_ / "cache/folded"), fs::directory_iterator()));
  }
  // A copy of a fixture adapter whose config is changed by `edit`.
  std::string edited_adapter(const std::string& c, const std::function<void(nlohmann::json&)>& edit) {
    const std::string out = dir_ / ("edited-" + std::to_string(++n_));
    fs::copy(fixture("lora/" + c + "/adapter"), out, fs::copy_options::recursive);
    auto j = nlohmann::json::parse(read_text_file(out + "/adapter_config.json"));
    edit(j);
    write_text_file(out + "/adapter_config.json", j.dump(2));
    return out;
  }
  test::TempDir dir_;
  int n_ = 0;
};

TEST_F(Lora, FoldsAsPeftMergeAndUnload) {
  for (const char* c : {"llama_qv", "llama_rslora_patterns", "qwen2_embed"}) {
    const std::string base_dir = base_of(c);
    const std::string adapter = fixture(std::string("lora/") + c + "/adapter");
    EXPECT_EQ(fs::weakly_canonical(lora_adapter_base(adapter)), fs::weakly_canonical(base_dir)) << c;
    const HfModel folded = HfModel::open(fold_lora_adapter(adapter, base_dir));
    const HfModel base = HfModel::open(base_dir);
    const HfModel expected = HfModel::open(fixture(std::string("lora/") + c + "/expected.safetensors"));
    ASSERT_EQ(folded.tensor_names(), base.tensor_names()) << c;
    std::size_t changed = 0;
    for (const auto& name : folded.tensor_names()) {
      const at::Tensor got = folded.tensor(name).to(at::kFloat);
      if (expected.find(name) != nullptr) {
        ++changed;
        const at::Tensor want = expected.tensor(name);
        ASSERT_EQ(got.sizes(), want.sizes()) << c << " " << name;
        EXPECT_LE((got - want).abs().max().item<double>(), 1e-6) << c << " " << name;
        EXPECT_FALSE(at::equal(got, base.tensor(name).to(at::kFloat))) << c << " " << name;
      } else {
        EXPECT_TRUE(at::equal(folded.tensor(name), base.tensor(name))) << c << " " << name << " should be the base's";
      }
    }
    EXPECT_EQ(changed, expected.num_tensors()) << c;
    ASSERT_TRUE(folded_from(folded.path()).has_value());
  }
}

TEST_F(Lora, AFoldIsMadeOnceAndReused) {
  const std::string adapter = fixture("lora/llama_qv/adapter");
  const std::string a = fold_lora_adapter(adapter, fixture("model/llama_untied"));
  const auto t0 = fs::last_write_time(a + "/model.safetensors");
  EXPECT_EQ(fold_lora_adapter(adapter, fixture("model/llama_untied")), a);
  EXPECT_EQ(fs::last_write_time(a + "/model.safetensors"), t0);
  EXPECT_EQ(cache_entries(), 1u);
}

TEST_F(Lora, BadAdaptersAreRefusedByNameAndLeaveNothing) {
  const std::string base = fixture("model/llama_untied");
  std::string e = test::error_of([&] { fold_lora_adapter(edited_adapter("llama_qv", [](auto& j) { j["r"] = 5; }), base); });
  EXPECT_NE(e.find("do not have the rank 5"), std::string::npos) << e;
  EXPECT_NE(e.find("lora_A [4, 64]"), std::string::npos) << e;
  // The rsLoRA adapter trains lm_head in full: the tied Qwen2 base has none.
  e = test::error_of([&] { fold_lora_adapter(fixture("lora/llama_rslora_patterns/adapter"), fixture("model/qwen2")); });
  EXPECT_NE(e.find("replaces 'lm_head.weight'"), std::string::npos) << e;
  EXPECT_NE(e.find("ties its head"), std::string::npos) << e;
  // Over another base (Qwen3's k_proj has head_dim 24): lora_B · lora_A does not fit the tensor.
  e = test::error_of([&] { fold_lora_adapter(fixture("lora/qwen2_embed/adapter"), fixture("model/qwen3")); });
  EXPECT_NE(e.find("k_proj.lora_B.weight: lora_B [32, 4] · lora_A [4, 64] gives [32, 64], but the base's"),
            std::string::npos) << e;
  // Half-written: the config without the weights.
  const std::string half = dir_ / "half";
  fs::create_directories(half);
  fs::copy(fixture("lora/llama_qv/adapter/adapter_config.json"), half + "/adapter_config.json");
  e = test::error_of([&] { fold_lora_adapter(half, base); });
  EXPECT_NE(e.find("adapter_model.safetensors: is missing"), std::string::npos) << e;
  e = test::error_of([&] { fold_lora_adapter(edited_adapter("llama_qv", [](auto& j) { j["peft_type"] = "IA3"; }), base); });
  EXPECT_NE(e.find("peft_type: 'IA3' is not supported"), std::string::npos) << e;
  EXPECT_EQ(cache_entries(), 0u);  // no folded model, no part-written folder
}

TEST_F(Lora, AdaptersAreCheckpointsInMergeYamlAndSweepSpecs) {
  const std::string base = fixture("model/llama_untied");
  const std::string qv = fixture("lora/llama_qv/adapter"), rs = fixture("lora/llama_rslora_patterns/adapter");
  const std::string yaml = dir_ / "m.yaml";
  std::ofstream(yaml) << "merge_method: task_arithmetic\nbase_model: " << base << "\nmodels:\n  - model: " << qv
                      << "\n  - model: " << base << "+" << rs << "\nparameters: {lambda: 1.0}\n";
  const auto r = test::run_cli("merge " + yaml + " " + (dir_ / "out"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // λ = 1: θ₀ + (θ_qv − θ₀) + (θ_rs − θ₀), each θ as peft folds it.
  const HfModel out = HfModel::open(dir_ / "out"), b = HfModel::open(base);
  const HfModel e1 = HfModel::open(fixture("lora/llama_qv/expected.safetensors"));
  const HfModel e2 = HfModel::open(fixture("lora/llama_rslora_patterns/expected.safetensors"));
  const std::string q = "model.layers.0.self_attn.q_proj.weight";
  const at::Tensor want = e1.tensor(q) + e2.tensor(q) - b.tensor(q);
  EXPECT_LE((out.tensor(q).to(at::kFloat) - want).abs().max().item<double>(), 1e-5);
  // A sweep's plan shows adapters as folded checkpoints.
  const std::string spec = dir_ / "s.yaml";
  std::ofstream(spec) << "base: " << base << "\ncheckpoints: [" << qv << ", " << rs
                      << "]\nsubsets: {sizes: [2], samples: 1, seed: 1}\nmethods:\n  - {method: task_arithmetic}\n"
                      << "output: " << (dir_ / "s.h5") << "\n";
  const auto plan = test::run_cli("sweep --plan " + spec);
  EXPECT_EQ(plan.exit_code, 0) << plan.err;
  EXPECT_NE(plan.out.find("lora r=4"), std::string::npos) << plan.out;
  EXPECT_NE(plan.out.find("folded onto the base"), std::string::npos) << plan.out;
}

}  // namespace
}  // namespace ms::io
