// The two ways to call a method give the same tensors: streaming from files and resident task
// vectors, whole or split across "ranks" by tensor.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "common/test_util.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/io/hf_model.hpp"
#include "mergesweep/merge/merge_streaming.hpp"
#include "mergesweep/merge/resident.hpp"
#include "mergesweep/testbed/synthetic_family.hpp"

namespace ms::merge {
namespace {

// A synthetic family of 4 checkpoints in `dtype` under a new temporary folder (as "fam/").
test::TempDir* write_family(const char* dtype, std::uint64_t seed) {
  auto* dir = new test::TempDir();
  testbed::SyntheticFamilyOptions o;
  o.checkpoints = 4;
  o.dtype = dtype;
  o.seed = seed;
  testbed::write_synthetic_family(*dir / "fam", o);
  return dir;
}

class ResidentVsStreaming : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { dir_ = write_family("float32", 3); }
  static void TearDownTestSuite() { delete dir_; }
  static std::string path(const std::string& p) { return *dir_ / ("fam/" + p); }
  static inline test::TempDir* dir_ = nullptr;

  static MergeRequest request(const char* method, std::map<std::string, std::string> params = {}) {
    MergeRequest r;
    r.method = find_method(method);
    r.params = validate_params(r.method->params, params, "", "");
    // A subset in a non-trivial order: checkpoints 3, 1, 2.
    for (int i : {3, 1, 2}) r.members.push_back({"ft", i, 0.2 + 0.1 * i, 0.3});
    return r;
  }
};

TEST_F(ResidentVsStreaming, SameTensorsForEveryMethod) {
  const std::vector<std::string> cks = {path("ft-00"), path("ft-01"), path("ft-02"), path("ft-03")};
  const ResidentModels all(path("base"), cks);
  LocalReducer local;
  for (const auto* info_ptr : all_methods()) {
    const auto& info = *info_ptr;
    if (info.name == "slerp") continue;  // one member only; covered by the parity fixtures
    std::map<std::string, std::string> params;
    if (info.name == "ties") params["trim"] = "global";
    MergeRequest r = request(info.name.c_str(), params);
    if (info.max_models > 0 && r.members.size() > static_cast<std::size_t>(info.max_models))
      r.members.resize(static_cast<std::size_t>(info.max_models));  // methods of one or two models
    StreamingJob job;
    job.request = r;
    job.base_path = path("base");
    for (const auto& m : r.members) job.member_paths.push_back(cks[m.index]);
    job.out_dir = *dir_ / ("out-" + info.name);
    merge_streaming(job);
    std::map<std::string, at::Tensor> resident;
    all.merge(r, resident, local);
    const auto written = io::HfModel::open(job.out_dir);
    for (const auto& name : all.tensor_names()) {
      const auto w = written.tensor(name);
      const double diff = (w - resident.at(name)).abs().max().item<double>();
      // TA and per-tensor TIES take the in-place fast path when resident: it must be bitwise the
      // same as the generic kernels the streaming path runs (and the parity tests check).
      const bool fast = info.name == "task_arithmetic";
      EXPECT_LE(diff, fast ? 0.0 : 2e-7) << info.name << " " << name;
    }
  }
}

TEST_F(ResidentVsStreaming, FastPathsAreBitwiseTheGenericKernels) {
  const std::vector<std::string> cks = {path("ft-00"), path("ft-01"), path("ft-02"), path("ft-03")};
  const ResidentModels all(path("base"), cks);
  LocalReducer local;
  for (const char* method : {"task_arithmetic", "ties"}) {
    for (const char* normalize : {"true", "false"}) {
      const MergeRequest r = request(method, {{"normalize", normalize}, {"lambda", "0.7"}});
      std::map<std::string, at::Tensor> fast;
      all.merge(r, fast, local);
      // The generic kernels, reached through the DARE-mask hook (which disables the fast path;
      // TA and TIES never consult it).
      const DareMaskFn unused = [](std::size_t, const std::string&) { return at::Tensor(); };
      std::map<std::string, at::Tensor> generic;
      all.merge(r, generic, local, &unused);
      for (const auto& name : all.tensor_names()) {
        EXPECT_TRUE(fast.at(name).equal(generic.at(name))) << method << " normalize=" << normalize << " " << name;
      }
    }
  }
}

TEST_F(ResidentVsStreaming, ResidentMergeReusesTheOutputBuffers) {
  const ResidentModels all(path("base"), {path("ft-00"), path("ft-01"), path("ft-02"), path("ft-03")});
  LocalReducer local;
  std::map<std::string, at::Tensor> out;
  all.merge(request("task_arithmetic"), out, local);
  const void* before = out.begin()->second.data_ptr();
  all.merge(request("ties"), out, local);
  EXPECT_EQ(out.begin()->second.data_ptr(), before);
}

}  // namespace
}  // namespace ms::merge

namespace ms::merge {
namespace {

// bfloat16 checkpoints: the fused streaming kernel widens, merges and rounds back itself; its bytes
// must equal the resident float32 result rounded by ATen (round to nearest even).
TEST(StreamingBf16, FusedTaskArithmeticRoundsLikeATen) {
  test::TempDir dir;
  testbed::SyntheticFamilyOptions o;
  o.checkpoints = 3;
  o.dtype = "bfloat16";
  testbed::write_synthetic_family(dir / "fam", o);
  MergeRequest r;
  r.method = find_method("task_arithmetic");
  r.params = validate_params(r.method->params, {{"lambda", "0.9"}}, "", "");
  std::vector<std::string> cks;
  for (int i = 0; i < 3; ++i) {
    r.members.push_back({"ft", i, 0.3 + 0.1 * i, 1.0});
    cks.push_back(dir / ("fam/ft-0" + std::to_string(i)));
  }
  StreamingJob job;
  job.request = r;
  job.base_path = dir / "fam/base";
  job.member_paths = cks;
  job.out_dir = dir / "out";
  merge_streaming(job);
  const ResidentModels resident(dir / "fam/base", cks);
  LocalReducer local;
  std::map<std::string, at::Tensor> out;
  resident.merge(r, out, local);
  const auto written = io::HfModel::open(job.out_dir);
  for (const auto& name : resident.tensor_names()) {
    EXPECT_TRUE(written.tensor(name).equal(out.at(name).to(at::kBFloat16))) << name;
  }
}

}  // namespace
}  // namespace ms::merge

namespace ms::merge {
namespace {

// Checkpoints held in their file dtype (bfloat16), τ formed per tensor at merge time, against the
// layout before: θ₀ and every τᵢ widened to float32 once at load. Every method, both TIES trims,
// both normalizations of the fused paths: the merged tensors must be bitwise the same.
class FileDtypeResidency : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { dir_ = write_family("bfloat16", 11); }
  static void TearDownTestSuite() { delete dir_; }
  static std::string path(const std::string& p) { return *dir_ / ("fam/" + p); }
  static std::vector<std::string> checkpoints() { return {path("ft-00"), path("ft-01"), path("ft-02"), path("ft-03")}; }
  static inline test::TempDir* dir_ = nullptr;
};

TEST_F(FileDtypeResidency, HoldsHalfTheBytesAndTheSameTaskVectors) {
  const ResidentModels held(path("base"), checkpoints());
  ResidentOptions f32;
  f32.residency = Residency::Float32TaskVectors;
  const ResidentModels old(path("base"), checkpoints(), {}, f32);
  EXPECT_EQ(held.resident_bytes() * 2, old.resident_bytes());
  for (const auto& name : held.tensor_names()) {
    EXPECT_EQ(held.base(name).scalar_type(), at::kFloat);
    EXPECT_TRUE(held.base(name).equal(old.base(name))) << name;
    EXPECT_EQ(held.held_base(name).scalar_type(), at::kBFloat16) << name;  // as stored, no copy
    for (std::size_t k = 0; k < 4; ++k) EXPECT_TRUE(held.tau(k, name).equal(old.tau(k, name))) << k << " " << name;
  }
  // The baselines as the sweep sees them: θ₀, and θ₀ + τ in either layout, to the bit.
  for (std::int64_t k = -1; k < 4; ++k) {
    for (const ResidentModels* m : {&held, &old}) {
      int seen = 0;
      m->baseline_each(k, [&](const std::string& name, const at::Tensor& got) {
        const at::Tensor expected = k < 0 ? old.base(name) : at::add(old.base(name), old.tau(static_cast<std::size_t>(k), name));
        EXPECT_TRUE(got.equal(expected)) << k << " " << name;
        ++seen;
      });
      EXPECT_EQ(seen, static_cast<int>(held.tensor_names().size()));
    }
  }
  // The float32 layout's held τ survives baseline_each unchanged (it is copied, never written).
  const std::string first = held.tensor_names().front();
  EXPECT_TRUE(old.tau(0, first).equal(held.tau(0, first)));
}

TEST_F(FileDtypeResidency, EveryMethodBitwiseEqualToFloat32TaskVectors) {
  const ResidentModels held(path("base"), checkpoints());
  ResidentOptions f32;
  f32.residency = Residency::Float32TaskVectors;
  const ResidentModels old(path("base"), checkpoints(), {}, f32);
  LocalReducer local;
  int compared = 0;
  for (const auto* info_ptr : all_methods()) {
    const auto& info = *info_ptr;
    std::vector<std::map<std::string, std::string>> variants = {{}};
    if (info.name == "ties") variants = {{{"trim", "global"}}, {{"normalize", "false"}}, {{"lambda", "0.6"}}};
    if (info.name == "task_arithmetic") variants = {{}, {{"normalize", "true"}, {"lambda", "0.7"}}};
    for (const auto& params : variants) {
      MergeRequest r;
      r.method = &info;
      r.params = validate_params(info.params, params, "", "");
      const std::vector<int> members = info.name == "slerp" ? std::vector<int>{2} : std::vector<int>{3, 0, 2};
      for (int i : members) r.members.push_back({"ft", i, 0.2 + 0.1 * i, 0.4});
      if (info.max_models > 0 && r.members.size() > static_cast<std::size_t>(info.max_models))
        r.members.resize(static_cast<std::size_t>(info.max_models));  // methods of one or two models
      std::map<std::string, at::Tensor> a, b;
      held.merge(r, a, local);
      old.merge(r, b, local);
      for (const auto& name : held.tensor_names()) {
        EXPECT_TRUE(a.at(name).equal(b.at(name))) << info.name << " " << r.params.canonical() << " " << name;
        ++compared;
      }
    }
  }
  EXPECT_GT(compared, 0);
}

// The benchmarks' constructor (tensors made in memory, no files) holds what it is given: the same
// tensors read from the files merge bitwise as the file-loading constructor merges them.
TEST_F(FileDtypeResidency, TensorsGivenInMemoryMergeAsTheFilesDo) {
  const ResidentModels loaded(path("base"), checkpoints());
  const auto read_all = [&](const std::string& folder) {
    const io::HfModel m = io::HfModel::open(folder);
    std::map<std::string, at::Tensor> out;
    for (const auto& name : loaded.tensor_names()) out[name] = m.tensor(name).clone();
    return out;
  };
  std::vector<std::map<std::string, at::Tensor>> cks;
  for (const auto& ck : checkpoints()) cks.push_back(read_all(ck));
  const ResidentModels given(read_all(path("base")), cks);
  EXPECT_EQ(given.tensor_names(), loaded.tensor_names());
  EXPECT_EQ(given.resident_bytes(), loaded.resident_bytes());
  LocalReducer local;
  for (const char* method : {"task_arithmetic", "ties"}) {
    MergeRequest r;
    r.method = find_method(method);
    r.params = validate_params(r.method->params, {}, "", "");
    for (int i : {0, 2, 3}) r.members.push_back({"ft", i, 0.3, 0.4});
    std::map<std::string, at::Tensor> a, b;
    loaded.merge(r, a, local);
    given.merge(r, b, local);
    for (const auto& name : loaded.tensor_names()) EXPECT_TRUE(a.at(name).equal(b.at(name))) << method << " " << name;
  }
  cks.front().erase(cks.front().begin());
  EXPECT_THROW(ResidentModels(read_all(path("base")), cks), Error);  // a checkpoint lacks a tensor
}

TEST_F(FileDtypeResidency, MergeEachHandsEveryTensorOnceInNameOrder) {
  const ResidentModels held(path("base"), checkpoints());
  LocalReducer local;
  MergeRequest r;
  r.method = find_method("task_arithmetic");
  r.params = validate_params(r.method->params, {}, "", "");
  r.members.push_back({"ft", 1, 0.5, 1.0});
  std::vector<std::string> seen;
  held.merge_each(r, local, [&](const std::string& name, const at::Tensor& t) {
    EXPECT_EQ(t.scalar_type(), at::kFloat);
    seen.push_back(name);
  });
  EXPECT_EQ(seen, held.tensor_names());
}

}  // namespace
}  // namespace ms::merge
