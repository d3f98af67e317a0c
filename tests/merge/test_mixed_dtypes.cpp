// Checkpoints of mixed dtypes (bf16 fine-tunes over an f32 base, f16, per-tensor mixtures): every
// method, on every path, merges them bitwise as it merges the same values stored in float32.
// Before, the fused CPU kernels read each member at the base's dtype: a bf16 member over an f32
// base was read as float32, past the end of its buffer, and the sweep wrote numbers like 1e33.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "common/mixed_family.hpp"
#include "common/row_block_family.hpp"
#include "common/test_util.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/io/family_check.hpp"
#include "mergesweep/io/hf_model.hpp"
#include "mergesweep/merge/merge.hpp"
#include "mergesweep/merge/merge_streaming.hpp"
#include "mergesweep/merge/resident.hpp"

namespace ms::merge {
namespace {

const std::vector<std::string> kNames = {"ft-0", "ft-1", "ft-2", "ft-3"};

// The row-block family (tensors over several row blocks, exact ties for TIES) as twins: base in
// float32 or bfloat16, the checkpoints bf16, f16, a per-tensor mixture and f32.
class MixedDtypes : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    test::write_row_block_family(*dir_ / "src", 4, "float32");
    for (const char* base : {"float32", "bfloat16"}) {
      test::MixedPlan plan;
      plan.base = base;
      test::write_mixed_twins(*dir_ / "src", kNames, plan, *dir_ / (std::string("mixed-") + base),
                              *dir_ / (std::string("ref-") + base));
    }
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string family(const std::string& kind) { return *dir_ / (kind + "-" + GetParam()); }
  static std::vector<std::string> checkpoints(const std::string& kind) {
    std::vector<std::string> out;
    for (const auto& n : kNames) out.push_back(family(kind) + "/" + n);
    return out;
  }
  static MergeRequest request(const Method& info, const std::map<std::string, std::string>& params = {}) {
    MergeRequest r;
    r.method = &info;
    r.params = validate_params(info.params, params, "", "");
    const std::vector<int> members = info.max_models == 1 ? std::vector<int>{1} : std::vector<int>{3, 0, 1, 2};
    for (int i : members) r.members.push_back({kNames[static_cast<std::size_t>(i)], i, 0.2 + 0.1 * i, 0.3});
    if (info.max_models > 0 && r.members.size() > static_cast<std::size_t>(info.max_models))
      r.members.resize(static_cast<std::size_t>(info.max_models));  // methods of one or two models
    return r;
  }
  // Every method with its defaults, and TIES with its whole-model (global) trim as well. Over a
  // bf16 base only the methods that do not go through an SVD: the SVD methods read τ through the
  // same widening as the others, and their SVDs of the largest tensors dominate the run time.
  static std::vector<MergeRequest> requests() {
    std::vector<MergeRequest> out;
    for (const auto* info_ptr : all_methods()) {
      const auto& info = *info_ptr;
      const bool svd = info.name == "tsv_m" || info.name == "iso_c" || info.name == "iso_cts" ||
                       info.name == "task_arithmetic_sb" || info.name == "ties_sb";
      if (!svd || GetParam() == "float32") out.push_back(request(info));
    }
    out.push_back(request(*find_method("ties"), {{"trim", "global"}}));
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

TEST_P(MixedDtypes, ResidentMergesAreBitwiseTheFloat32Family) {
  for (const Residency residency : {Residency::FileDtype, Residency::Float32TaskVectors}) {
    for (const bool fast : {true, false}) {
      if (residency == Residency::Float32TaskVectors && !fast) continue;  // that layout has no generic twin
      ResidentOptions o;
      o.residency = residency;
      o.cpu_fast_paths = fast;
      const ResidentModels mixed(family("mixed") + "/base", checkpoints("mixed"), {}, o);
      const ResidentModels ref(family("ref") + "/base", checkpoints("ref"), {}, o);
      LocalReducer local;
      for (const MergeRequest& r : requests()) {
        // Only task arithmetic and per-tensor TIES have fused kernels and a float32-τ twin; the
        // other methods take one path whatever the options, covered by the first configuration.
        const bool fused = r.method->fused_on_cpu(r.params);
        if ((!fast || residency == Residency::Float32TaskVectors) && !fused) continue;
        std::map<std::string, at::Tensor> a, b;
        mixed.merge(r, a, local);
        ref.merge(r, b, local);
        expect_bitwise(a, b, r.describe() + (fast ? " fast" : " generic") +
                                 (residency == Residency::FileDtype ? " file-dtype" : " f32-tau"));
      }
      // The baselines (θ₀, and each checkpoint as every merge sees it) too.
      for (std::int64_t k = -1; k < 4; ++k) {
        std::map<std::string, at::Tensor> a, b;
        mixed.baseline_each(k, [&](const std::string& n, const at::Tensor& t) { a[n] = t.clone(); });
        ref.baseline_each(k, [&](const std::string& n, const at::Tensor& t) { b[n] = t.clone(); });
        expect_bitwise(a, b, "baseline " + std::to_string(k));
      }
    }
  }
}

TEST_P(MixedDtypes, StreamingMergesAreBitwiseTheFloat32Family) {
  int case_no = 0;
  for (const MergeRequest& r : requests()) {
    std::map<std::string, at::Tensor> out[2];
    int side = 0;
    for (const char* kind : {"mixed", "ref"}) {
      StreamingJob job;
      job.request = r;
      job.base_path = family(kind) + "/base";
      for (const auto& m : r.members) job.member_paths.push_back(family(kind) + "/" + m.name);
      job.out_dir = *dir_ / (std::string("out-") + kind + "-" + GetParam() + "-" + std::to_string(case_no));
      job.out_dtype = "float32";  // the twins' bases differ in dtype; compare the float32 results
      merge_streaming(job);
      const io::HfModel written = io::HfModel::open(job.out_dir);
      for (const auto& name : written.tensor_names()) out[side][name] = written.tensor(name).clone();
      ++side;
    }
    expect_bitwise(out[0], out[1], r.describe() + " streaming");
    ++case_no;
  }
}

TEST_P(MixedDtypes, ResidentBytesAreEachCheckpointsOwn) {
  const io::FamilyReport rep = io::check_family(family("mixed") + "/base", checkpoints("mixed"));
  const ResidentModels mixed(family("mixed") + "/base", checkpoints("mixed"));
  std::uint64_t planned = 0;
  for (auto b : rep.held_bytes) planned += b;
  EXPECT_EQ(planned, mixed.resident_bytes());
  // bf16 and f16 members hold half the float32 bytes; the all-f32 member widens nothing.
  EXPECT_EQ(rep.checkpoints[0].merged_bytes * 2, rep.checkpoints[3].merged_bytes);
  EXPECT_EQ(rep.checkpoints[1].merged_bytes * 2, rep.checkpoints[3].merged_bytes);
  const bool f32_base = GetParam() == "float32";
  EXPECT_EQ(rep.checkpoints[3].widened, f32_base ? 0u : rep.tensor_names.size());
  EXPECT_EQ(rep.checkpoints[0].widened, f32_base ? rep.tensor_names.size() : 0u);
  EXPECT_GT(rep.checkpoints[2].dtypes.size(), 1u);  // the per-tensor mixture shows as such
  const std::string table = io::describe_family(rep);
  EXPECT_NE(table.find("widened to float32"), std::string::npos) << table;
  EXPECT_NE(table.find("ft-2"), std::string::npos) << table;
}

INSTANTIATE_TEST_SUITE_P(Base, MixedDtypes, ::testing::Values("float32", "bfloat16"));

}  // namespace
}  // namespace ms::merge
