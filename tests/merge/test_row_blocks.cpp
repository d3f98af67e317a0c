// Tensors larger than one row block (merge.hpp: kRowBlockElements) go through the resident merge
// in row blocks for every method that allows it: elementwise methods, the tensors TSV-M / Iso-C
// average and TA+SB leaves unboosted, per-tensor TIES after its trim rules, Model Stock after its
// Gram matrix. Blocks must give the whole-tensor merge bit for bit, on the fast CPU kernels and
// on the device-generic path a GPU runs (here on the CPU), and the streaming merge must agree.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <tuple>

#include "common/row_block_family.hpp"
#include "common/test_util.hpp"
#include "mergesweep/io/hf_model.hpp"
#include "mergesweep/merge/merge_streaming.hpp"
#include "mergesweep/merge/resident.hpp"

namespace ms::merge {
namespace {

const auto& kTensors = test::row_block_tensors();

// The fused kernels that sum a tensor in float64 where the generic path sums in float32 (Model
// Stock's Gram matrix, the spherical methods' norms): equal to it within rounding, not bitwise.
bool sums_in_float64(const MergeRequest& r) {
  const std::string& m = r.method->name;
  return m == "model_stock" || m == "slerp" || m == "nuslerp";
}
double max_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

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

  // Every method whose pass is not WholeTensor for some tensor, with the variants that change it,
  // and the methods whose fused CPU kernel merges whole tensors (RAM+).
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
        {"ram", {{"epsilon", "0.01"}}},
        {"ramplus_tl", {{"epsilon", "0.01"}, {"r", "0.5"}, {"alpha", "0.7"}}},
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
        if (sums_in_float64(r)) {
          EXPECT_LE(max_diff(a.at(name), whole), 1e-6 * whole.abs().max().item<double>()) << "fast path: " << what;
        } else {
          EXPECT_TRUE(a.at(name).equal(whole)) << "fast path: " << what;
        }
        EXPECT_TRUE(b.at(name).equal(whole)) << "device-generic path: " << what;
        ++compared;
      }
    }
  }
  EXPECT_EQ(compared, 2 * 18 * static_cast<int>(kTensors.size()));
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

// The fused kernels of the one- and two-model methods (kernels_pairwise.cpp), against the generic
// tensor kernels on tensors of many stream blocks and rows. NearSwap and a passthrough's scale are
// the same float operations: bitwise. SLERP and NuSLERP sum in float64 where the generic path sums
// in float32 through ATen: both within rounding of a float64 evaluation of the same formula.
std::vector<MergeRequest> pairwise_requests() {
  const std::vector<std::tuple<const char*, std::vector<int>, std::map<std::string, std::string>>> cases = {
      {"slerp", {1}, {{"t", "0.3"}}},
      {"slerp", {2}, {{"t", "0.7"}, {"granularity", "row"}}},
      {"nuslerp", {0, 3}, {}},
      {"nuslerp", {1, 2}, {{"nuslerp_flatten", "false"}}},
      {"nearswap", {2}, {{"t", "0.01"}}},
      {"passthrough", {3}, {{"scale", "0.9"}}},
  };
  std::vector<MergeRequest> out;
  for (const auto& [method, members, params] : cases) {
    MergeRequest r;
    r.method = find_method(method);
    r.params = validate_params(r.method->params, params, "", "");
    for (int i : members) r.members.push_back({"ft", i, 0.4 + 0.3 * i, 1.0});
    out.push_back(r);
  }
  return out;
}

TEST_F(RowBlocks, PairwiseFusedKernelsAgreeWithTheGenericPath) {
  int compared = 0;
  for (const std::string dtype : {"f32", "bf16"}) {
    const ResidentModels fast(path("base", dtype), checkpoints(dtype));
    ResidentOptions generic_options;
    generic_options.cpu_fast_paths = false;
    const ResidentModels generic(path("base", dtype), checkpoints(dtype), {}, generic_options);
    LocalReducer local;
    for (const MergeRequest& r : pairwise_requests()) {
      ASSERT_TRUE(r.method->fused_on_cpu(r.params)) << r.method->name;
      std::map<std::string, at::Tensor> a, b;
      fast.merge(r, a, local);
      generic.merge(r, b, local);
      const bool spherical = r.method->name == "slerp" || r.method->name == "nuslerp";
      for (const auto& [name, _] : kTensors) {
        const std::string what = dtype + " " + r.method->name + " " + r.params.canonical() + " " + name;
        if (!spherical) {
          EXPECT_TRUE(a.at(name).equal(b.at(name))) << what;
        } else {
          const double scale = b.at(name).abs().max().item<double>();
          const double diff = (a.at(name) - b.at(name)).abs().max().item<double>();
          EXPECT_LE(diff, 1e-6 * scale) << what;
        }
        ++compared;
      }
    }
  }
  EXPECT_EQ(compared, 2 * 6 * static_cast<int>(kTensors.size()));
}

// SLERP's fused kernel against a float64 evaluation of kernels::slerp's formula (per tensor).
TEST_F(RowBlocks, FusedSlerpIsWithinRoundingOfAFloat64Slerp) {
  const ResidentModels fast(path("base"), checkpoints());
  LocalReducer local;
  const MergeRequest r = pairwise_requests()[0];
  std::map<std::string, at::Tensor> merged;
  fast.merge(r, merged, local);
  for (const auto& [name, _] : kTensors) {
    const at::Tensor a = fast.base(name).to(at::kDouble);
    const at::Tensor b = a + fast.tau(1, name).to(at::kDouble);
    const double t = 0.3, dot = ((a / a.norm()) * (b / b.norm())).sum().item<double>();
    ASSERT_LT(std::abs(dot), 0.9995) << name << ": the test family must take the spherical branch";
    const double theta = std::acos(dot);
    const at::Tensor exact = a * (std::sin((1 - t) * theta) / std::sin(theta)) + b * (std::sin(t * theta) / std::sin(theta));
    const double diff = (merged.at(name).to(at::kDouble) - exact).abs().max().item<double>();
    EXPECT_LE(diff, 4e-7 * exact.abs().max().item<double>()) << name;
  }
}

// Model Stock's fused kernel against a float64 evaluation of its formula (per tensor, cosine mean;
// a zero τ, as the test family's lm_head has, counts as cosine 0 with the others).
TEST_F(RowBlocks, FusedModelStockIsWithinRoundingOfAFloat64ModelStock) {
  const ResidentModels fast(path("base"), checkpoints());
  LocalReducer local;
  const MergeRequest r = requests()[4];
  ASSERT_EQ(r.method->name, "model_stock");
  std::map<std::string, at::Tensor> merged;
  fast.merge(r, merged, local);
  for (const auto& [name, _] : kTensors) {
    std::vector<at::Tensor> taus;
    for (const auto& m : r.members) taus.push_back(fast.tau(static_cast<std::size_t>(m.index), name).to(at::kDouble).reshape(-1));
    const at::Tensor stacked = at::stack(taus), gram = at::mm(stacked, stacked.t());
    const at::Tensor norms = gram.diagonal().sqrt();
    double cos_sum = 0;
    const auto n = static_cast<std::int64_t>(taus.size());
    for (std::int64_t j = 0; j < n; ++j)
      for (std::int64_t k = j + 1; k < n; ++k)
        cos_sum += std::clamp(gram[j][k].item<double>() / std::max((norms[j] * norms[k]).item<double>(), 1e-6), -1.0, 1.0);
    const double cos = cos_sum / static_cast<double>(n * (n - 1) / 2);
    const double t = cos * static_cast<double>(n) / (cos * static_cast<double>(n - 1) + 1);
    const at::Tensor base = fast.base(name).to(at::kDouble).reshape(-1);
    const at::Tensor exact = (1 - t) * base + t * (base + stacked.mean(0));
    const double diff = (merged.at(name).to(at::kDouble).reshape(-1) - exact).abs().max().item<double>();
    EXPECT_LE(diff, 4e-7 * exact.abs().max().item<double>()) << name << " t " << t;
  }
}

}  // namespace
}  // namespace ms::merge
