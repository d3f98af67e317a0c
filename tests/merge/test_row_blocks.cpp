// Tensors larger than one row block (merge.hpp: kRowBlockElements) go through the resident merge
// in row blocks for every method that allows it: elementwise methods, the tensors TSV-M / Iso-C
// average and TA+SB leaves unboosted, per-tensor TIES after its trim rules, Model Stock after its
// Gram matrix. Blocks must give the whole-tensor merge bit for bit, on the fast CPU kernels and
// on the device-generic path a GPU runs (here on the CPU), and the streaming merge must agree.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "common/row_block_family.hpp"
#include "common/test_util.hpp"
#include "mergesweep/io/hf_model.hpp"
#include "mergesweep/merge/merge_streaming.hpp"
#include "mergesweep/merge/resident.hpp"

namespace ms::merge {
namespace {

const auto& kTensors = test::row_block_tensors();

class RowBlocks : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    test::write_row_block_family(*dir_ / "f32", 4, "float32");
    test::write_row_block_family(*dir_ / "bf16", 4, "bfloat16");
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string path(const std::string& p, const std::string& dtype = "f32") { return *dir_ / (dtype + "/" + p); }
  static std::vector<std::string> checkpoints(const std::string& dtype = "f32") {
    return {path("ft-0", dtype), path("ft-1", dtype), path("ft-2", dtype), path("ft-3", dtype)};
  }
  static inline test::TempDir* dir_ = nullptr;

  // Every method whose pass is not WholeTensor for some tensor, with the variants that change it.
  static std::vector<MergeRequest> requests() {
    const std::vector<std::pair<const char*, std::map<std::string, std::string>>> cases = {
        {"task_arithmetic", {{"normalize", "true"}, {"lambda", "0.7"}}},
        {"ties", {}},
        {"ties", {{"normalize", "false"}, {"lambda", "0.6"}}},
        {"dare_ties", {}},
        {"model_stock", {}},
        {"model_stock", {{"filter_wise", "true"}}},
        {"model_stock", {{"cosine_mean", "angle"}}},
        {"tsv_m", {}},
        {"iso_c", {}},
        {"task_arithmetic_sb", {}},
        {"ties_sb", {{"lambda", "0.8"}}},
        {"linear", {}},
        {"linear", {{"normalize", "false"}}},
        {"dare_linear", {}},
        {"dare_linear", {{"rescale", "none"}, {"normalize", "true"}, {"lambda", "0.9"}}},
        {"dare_ties", {{"rescale", "none"}, {"normalize", "true"}}},
    };
    std::vector<MergeRequest> out;
    for (const auto& [method, params] : cases) {
      MergeRequest r;
      r.method = find_method(method);
      r.params = validate_params(r.method->params, params, "", "");
      for (int i : {2, 0, 3}) r.members.push_back({"ft", i, 0.5 + 0.2 * i, 0.3});
      out.push_back(r);
    }
    return out;
  }
};

TEST_F(RowBlocks, TheTestModelHasTensorsOfSeveralBlocks) {
  const io::HfModel base = io::HfModel::open(path("base"));
  EXPECT_GT(base.require("model.embed_tokens.weight").numel(), 2 * kRowBlockElements);
  EXPECT_GT(base.require("model.layers.0.mlp.up_proj.weight").numel(), kRowBlockElements);
  const MergeRequest stock = requests()[4];
  EXPECT_EQ(tensor_pass(stock, "model.embed_tokens.weight", 2), TensorPass::StockRatioThenRows);
  EXPECT_EQ(tensor_pass(requests()[7], "model.embed_tokens.weight", 2), TensorPass::RowBlocks);
  EXPECT_EQ(tensor_pass(requests()[7], "model.layers.0.mlp.up_proj.weight", 2), TensorPass::WholeTensor);
  EXPECT_EQ(tensor_pass(requests()[9], "model.layers.0.mlp.up_proj.weight", 2), TensorPass::WholeTensor);
  EXPECT_EQ(tensor_pass(requests()[9], "lm_head.weight", 2), TensorPass::RowBlocks);
  EXPECT_EQ(tensor_pass(requests()[1], "lm_head.weight", 2), TensorPass::TrimRulesThenRows);
  EXPECT_EQ(tensor_pass(requests()[10], "lm_head.weight", 2), TensorPass::TrimRulesThenRows);
  EXPECT_EQ(tensor_pass(requests()[10], "model.layers.0.mlp.up_proj.weight", 2), TensorPass::WholeTensor);
}

TEST_F(RowBlocks, BlocksGiveTheWholeTensorMergeBitForBit) {
  int compared = 0;
  for (const std::string dtype : {"f32", "bf16"}) {  // bf16: τ formed per block from the stored bits
    const ResidentModels fast(path("base", dtype), checkpoints(dtype));
    ResidentOptions generic_options;
    generic_options.cpu_fast_paths = false;
    const ResidentModels generic(path("base", dtype), checkpoints(dtype), {}, generic_options);
    LocalReducer local;
    for (const MergeRequest& r : requests()) {
      std::map<std::string, at::Tensor> a, b;
      fast.merge(r, a, local);
      generic.merge(r, b, local);
      const GlobalStats none;
      for (const auto& [name, _] : kTensors) {
        std::vector<at::Tensor> taus;
        for (const auto& m : r.members) taus.push_back(fast.tau(static_cast<std::size_t>(m.index), name));
        const at::Tensor whole = merge_tensor(r, none, name, fast.base(name), taus);
        const std::string what = dtype + " " + r.method->name + " " + r.params.canonical() + " " + name;
        EXPECT_TRUE(a.at(name).equal(whole)) << "fast path: " << what;
        EXPECT_TRUE(b.at(name).equal(whole)) << "device-generic path: " << what;
        ++compared;
      }
    }
  }
  EXPECT_EQ(compared, 2 * 16 * static_cast<int>(kTensors.size()));
}

TEST_F(RowBlocks, StreamingMergeAgrees) {
  const ResidentModels resident(path("base"), checkpoints());
  LocalReducer local;
  int k = 0;
  for (const MergeRequest& r : requests()) {
    StreamingJob job;
    job.request = r;
    job.base_path = path("base");
    for (const auto& m : r.members) job.member_paths.push_back(checkpoints()[static_cast<std::size_t>(m.index)]);
    job.out_dir = *dir_ / ("out-" + std::to_string(k++));
    merge_streaming(job);
    std::map<std::string, at::Tensor> mine;
    resident.merge(r, mine, local);
    const io::HfModel written = io::HfModel::open(job.out_dir);
    for (const auto& [name, _] : kTensors)
      EXPECT_TRUE(written.tensor(name).equal(mine.at(name))) << r.method->name << " " << r.params.canonical() << " " << name;
  }
}

}  // namespace
}  // namespace ms::merge
