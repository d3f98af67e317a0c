// LoRA adapters in a resident sweep stay factored: a rank holds A, B and the saved tensors, and
// forms each folded tensor (io::fold_lora_into, the function that writes the folded folder) when a
// merge reads it. Every method, on the fast and the generic paths, the baselines and τ (the
// cosines' Gram matrix) must be bitwise what the same adapters give densified (folded and held as
// full checkpoints). The family mixes plain LoRA, rsLoRA with rank and alpha patterns, an
// embedding's LoRA, modules_to_save, an adapter that targets one module, a LoRA over a saved
// tensor, factors in f32, bf16 and f16, and a full checkpoint; over a float32 and a bf16 base.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include "common/lora_family.hpp"
#include "common/row_block_family.hpp"
#include "common/test_util.hpp"
#include "mergesweep/io/family_check.hpp"
#include "mergesweep/io/lora_adapter.hpp"
#include "mergesweep/merge/merge.hpp"
#include "mergesweep/merge/resident.hpp"

namespace ms::merge {
namespace {

std::vector<test::LoraPlan> adapter_plans() {
  std::vector<test::LoraPlan> p(4);
  p[0].targets = {"q_proj", "up_proj"};
  p[0].seed = 21;
  p[1].r = 8, p[1].alpha = 16, p[1].rslora = true, p[1].dtype = "bfloat16", p[1].seed = 22;
  p[1].targets = {"q_proj", "up_proj", "embed_tokens"};
  p[1].rank_pattern = {{"up_proj", 2}};
  p[1].alpha_pattern = {{"q_proj", 4.0}};
  p[1].modules_to_save = {"lm_head.weight"};
  p[2].r = 2, p[2].alpha = 2, p[2].dtype = "float16", p[2].targets = {"q_proj"}, p[2].seed = 23;
  // A LoRA on lm_head and on up_proj, whose base layer the adapter also saves whole.
  p[3].alpha = 4, p[3].targets = {"lm_head", "up_proj"}, p[3].seed = 24;
  p[3].modules_to_save = {"model.layers.0.mlp.up_proj.weight", "model.norm.weight"};
  return p;
}

class LoraResident : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    setenv("MS_CACHE_DIR", (*dir_ / "cache").c_str(), 1);
    for (const char* dtype : {"float32", "bfloat16"}) {
      const std::string fam = *dir_ / dtype;
      test::write_row_block_family(fam, 1, dtype);
      const auto plans = adapter_plans();
      for (std::size_t k = 0; k < plans.size(); ++k) {
        const std::string adapter = fam + "/adapter-" + std::to_string(k);
        test::write_lora_adapter(fam + "/base", adapter, plans[k]);
        test::write_densified(adapter, fam + "/base", fam + "/dense-" + std::to_string(k));
      }
    }
  }
  static void TearDownTestSuite() {
    unsetenv("MS_CACHE_DIR");
    delete dir_;
  }
  static std::string base() { return *dir_ / (GetParam() + "/base"); }
  // A full checkpoint, then the four adapters: folded folders as a spec resolves them (held
  // factored), or their densified copies.
  static std::vector<std::string> checkpoints(bool factored) {
    const std::string fam = *dir_ / GetParam();
    std::vector<std::string> out = {fam + "/ft-0"};
    for (int k = 0; k < 4; ++k) {
      const std::string adapter = fam + "/adapter-" + std::to_string(k);
      out.push_back(factored ? io::fold_lora_adapter(adapter, base()) : fam + "/dense-" + std::to_string(k));
    }
    return out;
  }
  static MergeRequest request(const Method& info, const std::vector<int>& members,
                              const std::map<std::string, std::string>& params = {}) {
    MergeRequest r;
    r.method = &info;
    r.params = validate_params(info.params, params, "", "");
    for (int i : members) r.members.push_back({"m" + std::to_string(i), i, 0.2 + 0.1 * i, 0.3});
    if (info.max_models > 0 && r.members.size() > static_cast<std::size_t>(info.max_models))
      r.members.resize(static_cast<std::size_t>(info.max_models));  // methods of one or two models
    return r;
  }
  // Every method with its defaults over three adapters and the full checkpoint, TIES with its
  // global trim as well, and the fused methods over the four adapters alone. Over a bf16 base
  // the SVD methods are left out (they read τ as the others do; their SVDs dominate the time).
  static std::vector<MergeRequest> requests() {
    std::vector<MergeRequest> out;
    for (const auto* info_ptr : all_methods()) {
      const auto& info = *info_ptr;
      const bool svd = info.name == "tsv_m" || info.name == "iso_c" || info.name == "iso_cts" ||
                       info.name == "task_arithmetic_sb" || info.name == "ties_sb";
      if (svd && GetParam() != "float32") continue;
      out.push_back(request(info, info.max_models == 1 ? std::vector<int>{2} : std::vector<int>{4, 0, 1, 2}));
    }
    out.push_back(request(*find_method("ties"), {3, 1, 4, 0}, {{"trim", "global"}}));
    out.push_back(request(*find_method("task_arithmetic"), {1, 2, 3, 4}));
    out.push_back(request(*find_method("ties"), {4, 3, 2, 1}));
    return out;
  }
  static inline test::TempDir* dir_ = nullptr;
};

void expect_bitwise(const std::map<std::string, at::Tensor>& a, const std::map<std::string, at::Tensor>& b,
                    const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (const auto& [name, t] : a) {
    const at::Tensor& u = b.at(name);
    ASSERT_EQ(t.scalar_type(), u.scalar_type()) << what << " " << name;
    EXPECT_TRUE(at::equal(t, u)) << what << " " << name << ": max diff "
                                 << (t.to(at::kDouble) - u.to(at::kDouble)).abs().max().item<double>();
  }
}

TEST_P(LoraResident, FactoredAdaptersMergeBitwiseAsDensified) {
  for (const bool fast : {true, false}) {
    ResidentOptions o;
    o.cpu_fast_paths = fast;
    const ResidentModels factored(base(), checkpoints(true), {}, o);
    const ResidentModels dense(base(), checkpoints(false), {}, o);
    LocalReducer local;
    for (const MergeRequest& r : requests()) {
      if (!fast && !r.method->fused_on_cpu(r.params)) continue;  // one path whatever the options
      std::map<std::string, at::Tensor> a, b;
      factored.merge(r, a, local);
      dense.merge(r, b, local);
      expect_bitwise(a, b, r.describe() + (fast ? " fast" : " generic"));
    }
    for (std::int64_t k = -1; k < 5; ++k) {  // the baselines: θ₀ and each checkpoint alone
      std::map<std::string, at::Tensor> a, b;
      factored.baseline_each(k, [&](const std::string& n, const at::Tensor& t) { a[n] = t.clone(); });
      dense.baseline_each(k, [&](const std::string& n, const at::Tensor& t) { b[n] = t.clone(); });
      expect_bitwise(a, b, "baseline " + std::to_string(k));
    }
    for (std::size_t k = 0; k < 5; ++k)  // τ as the Gram matrix (cosines) and global statistics read it
      for (const auto& name : factored.tensor_names())
        EXPECT_TRUE(at::equal(factored.tau(k, name), dense.tau(k, name))) << k << " " << name;
  }
}

TEST_P(LoraResident, ResidentBytesAreThePlansAndASmallPartOfTheDensifiedFamily) {
  const io::FamilyReport rep = io::check_family(base(), checkpoints(true));
  const io::FamilyReport dense_rep = io::check_family(base(), checkpoints(false));
  ASSERT_EQ(rep.factored.size(), 5u);
  EXPECT_EQ(rep.factored[0], nullptr);  // the full checkpoint
  for (std::size_t k = 1; k < 5; ++k) {
    EXPECT_NE(rep.factored[k], nullptr) << k;
    EXPECT_TRUE(rep.checkpoints[k].factored) << k;
    EXPECT_EQ(dense_rep.factored[k], nullptr) << k;
  }
  const ResidentModels factored(base(), checkpoints(true));
  const ResidentModels dense(base(), checkpoints(false));
  std::uint64_t planned = 0, planned_dense = 0;
  for (auto b : rep.held_bytes) planned += b;
  for (auto b : dense_rep.held_bytes) planned_dense += b;
  EXPECT_EQ(planned, factored.resident_bytes());
  EXPECT_EQ(planned_dense, dense.resident_bytes());
  // The adapters alone: their A, B and saved tensors against four folded models.
  std::uint64_t adapters = 0, densified = 0;
  for (std::size_t k = 1; k < 5; ++k)
    adapters += rep.checkpoints[k].held_bytes, densified += dense_rep.checkpoints[k].held_bytes;
  EXPECT_LT(adapters * 5, densified) << adapters << " against " << densified;
  // Adapter 2 (r=2 on one 64×64 projection, f16): two factors of 2·64 values.
  EXPECT_EQ(rep.checkpoints[3].held_bytes, 2u * (2 * 64) * 2);
  // Folds at merge time: q_proj by adapters 0, 1, 2; up_proj by 0, 1, 3; the embedding by 1;
  // lm_head by 3 (adapter 1 saves lm_head whole: held, not folded).
  std::map<std::string, std::size_t> folds;
  for (std::size_t t = 0; t < rep.tensor_names.size(); ++t) folds[rep.tensor_names[t]] = rep.folds[t];
  EXPECT_EQ(folds.at("model.layers.0.self_attn.q_proj.weight"), 3u);
  EXPECT_EQ(folds.at("model.layers.0.mlp.up_proj.weight"), 3u);
  EXPECT_EQ(folds.at("model.embed_tokens.weight"), 1u);
  EXPECT_EQ(folds.at("lm_head.weight"), 1u);
  EXPECT_EQ(folds.at("model.norm.weight"), 0u);
  const std::string table = io::describe_family(rep);
  EXPECT_NE(table.find("held factored"), std::string::npos) << table;
}

INSTANTIATE_TEST_SUITE_P(Base, LoraResident, ::testing::Values("float32", "bfloat16"));

}  // namespace
}  // namespace ms::merge
