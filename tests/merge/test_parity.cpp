// Parity with the reference implementations, on fixtures they produced themselves
// (tests/fixtures/merge: mergekit for the methods it has, tests/reference/merge_reference.py for
// TSV-M, Iso-C, Iso-CTS, Subspace Boosting and the variants). Each case directory holds
// case.json (method, members, weights, densities, every parameter), expected.safetensors and,
// for DARE, the keep-masks mergekit drew (masks.safetensors), which are fed in.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <nlohmann/json.hpp>

#include "common/test_util.hpp"
#include "mergesweep/io/safetensors_file.hpp"
#include "mergesweep/merge/resident.hpp"

namespace ms::merge {
namespace {

namespace fs = std::filesystem;

const std::string kRoot = test::source_path("tests/fixtures/merge");

std::vector<std::string> case_names() {
  std::vector<std::string> names;
  if (!fs::exists(kRoot + "/cases")) return names;
  for (const auto& e : fs::directory_iterator(kRoot + "/cases")) {
    if (fs::exists(e.path() / "case.json")) names.push_back(e.path().filename());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string text_of(const nlohmann::json& v) {
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_string()) return v.get<std::string>();
  return format_number(v.get<double>());
}

// Entries whose TIES top-k selection is a tie at the boundary (two equal magnitudes, one kept):
// torch's unstable argsort and mergesweep's index order may keep different ones. TIES is
// elementwise after the trim, so only those positions can differ; they are left out of the
// comparison (and counted).
at::Tensor boundary_ties(const MergeRequest& r, const ResidentModels& m, const std::string& name) {
  at::Tensor ambiguous = at::zeros(m.base(name).sizes(), at::kBool);
  const bool per_tensor_trim = (r.method->name == "ties" || r.method->name == "ties_sb") &&
                               r.params.choice("trim") == "per_tensor";
  if (!per_tensor_trim) return ambiguous;
  for (const auto& mem : r.members) {
    const at::Tensor a = m.tau(mem.index, name).abs();
    const std::int64_t n = a.numel();
    const auto k = std::max<std::int64_t>(1, static_cast<std::int64_t>(mem.density * static_cast<double>(n)));
    if (mem.density >= 1 || k >= n) continue;
    const at::Tensor sorted = std::get<0>(a.flatten().sort(0, /*descending=*/true));
    const float kth = sorted[k - 1].item<float>();
    if (kth > 0 && sorted[k].item<float>() == kth) ambiguous |= a.eq(kth);
  }
  return ambiguous;
}

class Parity : public ::testing::TestWithParam<std::string> {};

TEST_P(Parity, MatchesTheReferenceOutput) {
  const std::string dir = kRoot + "/cases/" + GetParam();
  const auto c = nlohmann::json::parse(test::read_file(dir + "/case.json"));
  MergeRequest r;
  r.method = find_method(c["method"].get<std::string>());
  ASSERT_NE(r.method, nullptr) << c["method"];
  std::map<std::string, std::string> params;
  for (const auto& [k, v] : c["params"].items()) params[k] = text_of(v);
  r.params = validate_params(r.method->params, params, dir, "case");
  std::vector<std::string> models;
  for (const auto& m : c["models"]) models.push_back(kRoot + "/" + m.get<std::string>());
  for (std::size_t i = 0; i < models.size(); ++i) {
    Member mem{c["models"][i].get<std::string>(), static_cast<int>(i), 1.0, 1.0};
    if (c.contains("weights") && !c["weights"].is_null()) mem.weight = c["weights"][i].get<double>();
    if (c.contains("densities") && !c["densities"].is_null()) mem.density = c["densities"][i].get<double>();
    r.members.push_back(mem);
  }
  const ResidentModels resident(kRoot + "/" + c["base"].get<std::string>(), models);

  std::shared_ptr<const io::SafetensorsFile> masks;
  DareMaskFn mask_fn;
  if (fs::exists(dir + "/masks.safetensors")) {
    masks = io::SafetensorsFile::open(dir + "/masks.safetensors");
    mask_fn = [&](std::size_t member, const std::string& tensor) {
      const std::string model = fs::path(c["models"][member].get<std::string>()).filename();
      return masks->tensor(model + "::" + tensor).to(at::kFloat);
    };
  }
  LocalReducer local;
  std::map<std::string, at::Tensor> out;
  resident.merge(r, out, local, masks ? &mask_fn : nullptr);

  const double tol = c.value("tolerance", 1e-6);
  const auto expected = io::SafetensorsFile::open(dir + "/expected.safetensors");
  double worst = 0;
  std::string worst_name;
  std::int64_t skipped = 0;
  for (const auto& e : expected->header().tensors) {
    ASSERT_TRUE(out.count(e.name)) << e.name;
    const at::Tensor ambiguous = boundary_ties(r, resident, e.name);
    skipped += ambiguous.sum().item<std::int64_t>();
    const at::Tensor d = (expected->tensor(e).to(at::kFloat) - out.at(e.name)).abs().masked_fill(ambiguous, 0);
    const double diff = d.max().item<double>();
    if (diff > worst) worst = diff, worst_name = e.name;
    EXPECT_LE(diff, tol) << GetParam() << ": " << e.name;
  }
  EXPECT_EQ(expected->header().tensors.size(), out.size());
  EXPECT_LE(skipped, 16) << "too many boundary ties to call this a parity test";
  std::printf("[ parity ] %-24s %-20s max |diff| %.3g (%s), %lld boundary-tie entries skipped; source: %s\n",
              GetParam().c_str(), r.method->name.c_str(), worst, worst_name.c_str(), static_cast<long long>(skipped),
              c.value("source", "?").c_str());
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Parity, ::testing::ValuesIn(case_names()),
                         [](const auto& p) { return p.param; });

// A fixture here or in tests/fixtures/mergekit_methods (test_mergekit_methods.cpp) counts.
TEST(ParityFixtures, CoverEveryMethod) {
  std::set<std::string> covered;
  for (const auto& name : case_names()) {
    covered.insert(nlohmann::json::parse(test::read_file(kRoot + "/cases/" + name + "/case.json"))["method"].get<std::string>());
  }
  const std::string more = test::source_path("tests/fixtures/mergekit_methods/cases");
  for (const auto& e : fs::directory_iterator(more)) {
    if (fs::exists(e.path() / "case.json"))
      covered.insert(nlohmann::json::parse(test::read_file((e.path() / "case.json").string()))["method"].get<std::string>());
  }
  for (const Method* m : all_methods()) EXPECT_TRUE(covered.count(m->name)) << "no parity fixture for " << m->name;
}

}  // namespace
}  // namespace ms::merge
