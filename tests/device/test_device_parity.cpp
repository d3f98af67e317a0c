// CPU against CUDA, on a machine with a GPU (skipped without one; bench/gpu/check.sh runs it):
// merges of every method from resident bf16 checkpoints, bitwise for the elementwise methods and
// within 1e-6 (float32) for the others (their reductions and SVDs run in other orders on the
// GPU); evaluation accuracy on the tiny testbed's task packs identical.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "common/row_block_family.hpp"
#include "common/test_util.hpp"
#include "mergesweep/core/gpu_binding.hpp"
#include "mergesweep/eval/scoring.hpp"
#include "mergesweep/eval/task_pack.hpp"
#include "mergesweep/io/hf_model.hpp"
#include "mergesweep/merge/merge.hpp"
#include "mergesweep/merge/registry.hpp"
#include "mergesweep/merge/resident.hpp"
#include "mergesweep/model/decoder.hpp"
#include "mergesweep/model/device.hpp"
#include "mergesweep/testbed/synthetic_family.hpp"
#include "mergesweep/testbed/testbed.hpp"

namespace ms {
namespace {

c10::Device gpu() { return model::resolve_device("cuda", node_slot().rank, "", "test"); }

class DeviceParity : public ::testing::Test {
 protected:
  void SetUp() override {
    if (model::visible_cuda_devices() == 0) GTEST_SKIP() << "no GPU visible: CPU/CUDA parity needs one";
  }
};

TEST_F(DeviceParity, EveryMethodMergesAlikeOnCpuAndCuda) {
  test::TempDir dir;
  testbed::SyntheticFamilyOptions o;
  o.checkpoints = 4;
  o.dtype = "bfloat16";
  testbed::write_synthetic_family(dir / "fam", o);
  std::vector<std::string> cks;
  for (int i = 0; i < 4; ++i) cks.push_back(dir / ("fam/ft-0" + std::to_string(i)));
  const merge::ResidentModels cpu(dir / "fam/base", cks);
  merge::ResidentOptions on_gpu;
  on_gpu.device = gpu();
  const merge::ResidentModels cuda(dir / "fam/base", cks, {}, on_gpu);
  merge::LocalReducer local;
  for (const auto* info_ptr : merge::all_methods()) {
    const auto& info = *info_ptr;
    merge::MergeRequest r;
    r.method = &info;
    r.params = merge::validate_params(info.params, {}, "", "");
    for (int i : info.name == "slerp" ? std::vector<int>{1} : std::vector<int>{0, 2, 3})
      r.members.push_back({"ft", i, 0.3 + 0.1 * i, 0.5});
    if (info.max_models > 0 && r.members.size() > static_cast<std::size_t>(info.max_models))
      r.members.resize(static_cast<std::size_t>(info.max_models));  // methods of one or two models
    const bool elementwise = info.scope_for(r.params) == merge::Scope::Elementwise;
    std::map<std::string, at::Tensor> a, b;
    cpu.merge(r, a, local);
    cuda.merge(r, b, local);
    for (const auto& name : cpu.tensor_names()) {
      const at::Tensor g = b.at(name).to(at::kCPU);
      if (elementwise) {
        EXPECT_TRUE(a.at(name).equal(g)) << info.name << " " << name;
      } else {
        const double tol = 1e-6 * std::max(1.0, a.at(name).abs().max().item<double>());
        EXPECT_LE((a.at(name) - g).abs().max().item<double>(), tol) << info.name << " " << name;
      }
    }
  }
}

// Tensors of several row blocks: on the GPU per-tensor TIES makes its trim rules by top-k and
// elects in row blocks, Model Stock sums its Gram matrix over row blocks, TSV-M / Iso-C / TA+SB
// average embeddings in row blocks. Against the CPU's fast kernels and whole tensors.
TEST_F(DeviceParity, RowBlockPassesMergeAlikeOnCpuAndCuda) {
  test::TempDir dir;
  test::write_row_block_family(dir.path(), 3, "bfloat16");  // as real checkpoints are stored
  const std::vector<std::string> cks = {dir / "ft-0", dir / "ft-1", dir / "ft-2"};
  const merge::ResidentModels cpu(dir / "base", cks);
  merge::ResidentOptions on_gpu;
  on_gpu.device = gpu();
  const merge::ResidentModels cuda(dir / "base", cks, {}, on_gpu);
  merge::LocalReducer local;
  for (const char* method : {"task_arithmetic", "ties", "ties_sb", "model_stock", "tsv_m", "iso_c", "task_arithmetic_sb"}) {
    merge::MergeRequest r;
    r.method = merge::find_method(method);
    r.params = merge::validate_params(r.method->params, {}, "", "");
    for (int i : {2, 0, 1}) r.members.push_back({"ft", i, 0.4 + 0.2 * i, 0.3});
    std::map<std::string, at::Tensor> a, b;
    cpu.merge(r, a, local);
    cuda.merge(r, b, local);
    for (const auto& [name, shape] : test::row_block_tensors()) {
      const at::Tensor g = b.at(name).to(at::kCPU);
      // Elementwise after their statistics: bitwise where the statistic is exact (a trim rule, a
      // plain mean); Model Stock's ratio and the SVDs reduce in other orders on the GPU.
      const merge::TensorPass pass = merge::tensor_pass(r, name, static_cast<std::int64_t>(shape.size()));
      const bool exact = pass == merge::TensorPass::RowBlocks || pass == merge::TensorPass::TrimRulesThenRows;
      const double tol = exact ? 0.0 : 1e-6 * std::max(1.0, a.at(name).abs().max().item<double>());
      EXPECT_LE((a.at(name) - g).abs().max().item<double>(), tol) << method << " " << name;
    }
  }
}

TEST_F(DeviceParity, TestbedAccuracyIdenticalOnCpuAndCuda) {
  at::NoGradGuard no_grad;
  test::TempDir dir;
  testbed::write_testbed(dir / "tb", testbed::testbed_preset("tiny"));
  const io::HfModel files = io::HfModel::open(dir / "tb/base");
  const auto cpu = model::Decoder::load(dir / "tb/base", at::kFloat);
  const auto cuda = model::Decoder::create(
      *files.config(), [&](const std::string& n) { return files.find(n) ? files.tensor(n).to(gpu()) : at::Tensor(); },
      at::kFloat, dir / "tb/base");
  eval::ScoreOptions opts;
  int packs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir / "tb/tasks")) {
    const eval::TaskPack pack = eval::read_task_pack(entry.path().string());
    eval::TaskTally on_cpu, on_cuda;
    const auto a = eval::score_items(*cpu, pack, 0, pack.items.size(), opts);
    const auto b = eval::score_items(*cuda, pack, 0, pack.items.size(), opts);
    for (std::size_t i = 0; i < a.size(); ++i) on_cpu.add(pack.items[i], a[i]), on_cuda.add(pack.items[i], b[i]);
    EXPECT_EQ(on_cpu.acc, on_cuda.acc) << pack.name;
    EXPECT_EQ(on_cpu.acc_norm, on_cuda.acc_norm) << pack.name;
    ++packs;
  }
  EXPECT_GT(packs, 0);
}

}  // namespace
}  // namespace ms
