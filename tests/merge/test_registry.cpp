// The registry and parameter validation: every method's defaults are valid, and bad parameters or
// member counts are refused before any tensor is touched, each with an error naming it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "common/test_util.hpp"
#include "eval/counter_rng.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/core/hash.hpp"
#include "mergesweep/merge/merge.hpp"
#include "mergesweep/merge/mergekit_config.hpp"
#include "mergesweep/merge/request.hpp"

namespace ms::merge {
namespace {

using ms::test::error_of;

TEST(Registry, HasEveryMethodWithValidDefaults) {
  for (const char* name : {"linear", "slerp", "task_arithmetic", "ties", "dare_ties", "dare_linear", "model_stock",
                           "tsv_m", "iso_c", "iso_cts", "task_arithmetic_sb", "ties_sb"}) {
    const Method* m = find_method(name);
    ASSERT_NE(m, nullptr) << name;
    EXPECT_NO_THROW(validate_params(m->params, {}, "", name)) << name;
    EXPECT_FALSE(m->reference_url.empty());
    for (const auto& p : m->params) EXPECT_FALSE(p.help.empty()) << name << "." << p.name;
  }
  EXPECT_EQ(find_method("nope"), nullptr);
  EXPECT_NE(error_of([] { require_method("nope", "x.yaml"); }).find("known: linear"), std::string::npos);
}

TEST(Registry, ScopesDriveSharding) {
  const auto& ties = *find_method("ties");
  EXPECT_EQ(ties.scope_for(validate_params(ties.params, {}, "", "")), Scope::WholeTensor);
  EXPECT_EQ(ties.scope_for(validate_params(ties.params, {{"trim", "global"}}, "", "")), Scope::WholeModel);
  EXPECT_EQ(find_method("task_arithmetic")->scope, Scope::Elementwise);
  EXPECT_EQ(find_method("iso_c")->scope, Scope::WholeTensor);
}

TEST(Params, ValidatesTypesRangesAndNames) {
  const auto& ties = find_method("ties")->params;
  EXPECT_NE(error_of([&] { validate_params(ties, {{"lamda", "1"}}, "c.yaml", "method 'ties'"); }).find("lamda: unknown parameter"),
            std::string::npos);
  EXPECT_NE(error_of([&] { validate_params(ties, {{"lambda", "nan"}}, "c.yaml", "m"); }).find("finite"), std::string::npos);
  EXPECT_NE(error_of([&] { validate_params(ties, {{"lambda", ".inf"}}, "c.yaml", "m"); }).find("finite"), std::string::npos);
  EXPECT_NE(error_of([&] { validate_params(ties, {{"normalize", "maybe"}}, "c.yaml", "m"); }).find("boolean"), std::string::npos);
  EXPECT_NE(error_of([&] { validate_params(ties, {{"trim", "local"}}, "c.yaml", "m"); }).find("per_tensor, global"),
            std::string::npos);
  const auto& sb = find_method("task_arithmetic_sb")->params;
  EXPECT_NE(error_of([&] { validate_params(sb, {{"beta", "1.5"}}, "c.yaml", "m"); }).find("out of range"), std::string::npos);
  const Params p = validate_params(ties, {{"lambda", "0.50"}, {"normalize", "True"}}, "", "");
  EXPECT_EQ(p.canonical(), "lambda=0.5,normalize=true,trim=per_tensor");  // canonical text, defaults filled in
  EXPECT_DOUBLE_EQ(p.number("lambda"), 0.5);
}

MergeRequest request(const char* method, int members, std::map<std::string, std::string> params = {}) {
  MergeRequest r;
  r.method = find_method(method);
  r.params = validate_params(r.method->params, params, "", "");
  for (int i = 0; i < members; ++i) r.members.push_back({"m" + std::to_string(i), i, 1.0, 1.0});
  return r;
}

TEST(Request, MemberCountsAndPerModelValuesAreChecked) {
  EXPECT_NE(error_of([] { validate_request(request("slerp", 2), "c.yaml"); }).find("exactly 1"), std::string::npos);
  EXPECT_NE(error_of([] { validate_request(request("model_stock", 1), "c.yaml"); }).find("at least 2"), std::string::npos);
  auto r = request("ties", 2);
  r.members[1].density = 0;
  EXPECT_NE(error_of([&] { validate_request(r, "c.yaml"); }).find("m1: density"), std::string::npos);
  r.members[1].density = 0.5;
  r.members[0].weight = std::nan("");
  EXPECT_NE(error_of([&] { validate_request(r, "c.yaml"); }).find("m0: weight"), std::string::npos);
}

TEST(Request, ConfigHashIsStableAndSensitive) {
  const auto a = request("ties", 3, {{"lambda", "1"}});
  const auto b = request("ties", 3, {{"lambda", "1.0"}});  // same canonical value
  EXPECT_EQ(a.config_hash(), b.config_hash());
  EXPECT_NE(a.config_hash(), request("ties", 3, {{"lambda", "0.9"}}).config_hash());
  EXPECT_NE(a.config_hash(), request("ties", 2, {{"lambda", "1"}}).config_hash());
  EXPECT_EQ(stable_hash("abc"), stable_hash("abc"));
}

// The hashes behind config ids, DARE masks, subset draws and random streams (core/hash.hpp) give
// the values they gave before they moved to core: an archive's ids and masks must never change.
// The expected values come from the implementations as they were (splitmix64's first output for
// state 0 is the published 0xE220A8397B1DCDAF; the base config id is the one archives hold).
TEST(Hashes, HashesArePinned) {
  EXPECT_EQ(mix64(0), 0xe220a8397b1dcdafull);
  EXPECT_EQ(mix64(12345), 0x22118258a9d111a0ull);
  EXPECT_EQ(stable_hash(""), 0xc3817c016ba4ff30ull);
  EXPECT_EQ(stable_hash("mergesweep/base"), 0x754cdaaedaca5512ull);
  const eval::CounterRng rng(7, "bootstrap/testbed_arith", 2);
  EXPECT_EQ(rng.bits(0), 0xfef8d0f2c6906ebaull);
  EXPECT_EQ(rng.bits(5), 0x734c2912e006b250ull);
}

// The loops' integer form of the DARE draw keeps exactly the entries the double comparison keeps,
// at the boundaries too: a density equal to an element's own u (not kept), one ulp above it (kept).
TEST(Hashes, DareIntegerThresholdKeepsWhatTheDrawKeeps) {
  const std::uint64_t key = dare_key(7, 0x1234, 3, "model.layers.0.mlp.up_proj.weight");
  std::vector<double> densities = {0.0, 1e-300, 1e-17, 0.1, 0.3, 0.5, 0.7, 0.9999999999999999, 1.0, 1.5, -0.2,
                                   std::nan("")};
  for (std::int64_t e : {0, 17, 99991}) {
    const std::uint64_t h = mix64(key + static_cast<std::uint64_t>(e) * 0xD1B54A32D192ED03ull) >> 11;
    const double u = static_cast<double>(h) / 9007199254740992.0;
    densities.push_back(u);
    densities.push_back(std::nextafter(u, 2.0));
    EXPECT_FALSE(dare_keeps_below(key, e, dare_threshold(u)));
    EXPECT_TRUE(dare_keeps_below(key, e, dare_threshold(std::nextafter(u, 2.0))));
  }
  std::int64_t kept = 0;
  for (double d : densities) {
    const std::uint64_t threshold = dare_threshold(d);
    for (std::int64_t e = 0; e < 100000; ++e) {
      ASSERT_EQ(dare_keeps_below(key, e, threshold), dare_keeps(key, e, d)) << "density " << d << " element " << e;
      kept += dare_keeps(key, e, d);
    }
  }
  EXPECT_GT(kept, 0);
}

TEST(MergekitConfig, ReadsMethodsModelsAndParameters) {
  const auto job = parse_mergekit_config(R"(
merge_method: ties
base_model: base
models:
  - model: base
  - model: a
    parameters: {weight: 0.7, density: 0.2}
  - model: b
parameters:
  density: 0.5
  lambda: 0.9
dtype: bfloat16
tokenizer_source: base
int8_mask: true
)", "c.yaml");
  EXPECT_EQ(job.request.method->name, "ties");
  EXPECT_EQ(job.base_path, "base");
  ASSERT_EQ(job.member_paths, (std::vector<std::string>{"a", "b"}));  // the base is not a member
  EXPECT_DOUBLE_EQ(job.request.members[0].weight, 0.7);
  EXPECT_DOUBLE_EQ(job.request.members[0].density, 0.2);
  EXPECT_DOUBLE_EQ(job.request.members[1].density, 0.5);  // top-level default
  EXPECT_DOUBLE_EQ(job.request.params.number("lambda"), 0.9);
  EXPECT_EQ(job.out_dtype, "bfloat16");
}

// mergekit's int8_mask (in `parameters`, as published configs write it) only changes the dtype
// mergekit holds its sign masks in: the same request, so the same merge and the same config id.
TEST(MergekitConfig, Int8MaskIsAcceptedAndChangesNothing) {
  const char* text = "merge_method: ties\nbase_model: base\nmodels:\n  - model: a\n  - model: b\n"
                     "parameters: {density: 0.5, normalize: true%s}\n";
  char with[512], without[512];
  std::snprintf(with, sizeof with, text, ", int8_mask: true");
  std::snprintf(without, sizeof without, text, "");
  EXPECT_EQ(parse_mergekit_config(with, "c.yaml").request.config_hash(),
            parse_mergekit_config(without, "c.yaml").request.config_hash());
  EXPECT_NE(error_of([] {
              parse_mergekit_config("merge_method: model_stock\nbase_model: b\nmodels: [{model: a}, {model: c}]\n"
                                    "parameters: {int8_mask: true}\n", "c.yaml");
            }).find("model_stock takes no int8_mask"),
            std::string::npos);
}

TEST(MergekitConfig, RefusesWhatItDoesNotSupportNamingTheKey) {
  EXPECT_NE(error_of([] { parse_mergekit_config("merge_method: linear\nmodels: [{model: a}]\nfoo: 1\n", "c.yaml"); })
                .find("c.yaml: foo: line 3: unknown key 'foo'"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              parse_mergekit_config("merge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: 1, x: 2}\n", "c.yaml");
            }).find("models[0].parameters.x"),
            std::string::npos);
  // tokenizer_source names base, union or one of the merge's models; mergekit's tokenizer block is refused.
  EXPECT_NE(error_of([] {
              parse_mergekit_config("merge_method: linear\nmodels: [{model: a}]\ntokenizer_source: b\n", "c.yaml");
            }).find("tokenizer_source: line 3: expected base, union or the path of one of the models"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              parse_mergekit_config("merge_method: linear\nmodels: [{model: a}]\ntokenizer: {source: union}\n", "c.yaml");
            }).find("tokenizer: line 3: mergekit's tokenizer block"),
            std::string::npos);
  const StreamingJob job = parse_mergekit_config(
      "merge_method: task_arithmetic\nbase_model: b\nmodels: [{model: a}, {model: c}]\ntokenizer_source: c\n", "c.yaml");
  EXPECT_EQ(job.vocab.source, io::VocabSource::Model);
  EXPECT_EQ(job.vocab.model, 2u);  // 0 the base, 1 + k member k
  EXPECT_TRUE(job.vocab.base_in_merge);
}

}  // namespace
}  // namespace ms::merge

namespace ms::merge {
namespace {

// sb_order's values say what they do; the version names stay the stored spelling, so the
// canonical text (and every config id hashed from it) is the same for either.
TEST(Registry, SbOrderAcceptsDescriptiveNamesAndStoresTheOldOnes) {
  const Method& m = *find_method("ties_sb");
  const Params a = validate_params(m.params, {{"sb_order", "boost_then_scale"}}, "", "ties_sb");
  const Params b = validate_params(m.params, {{"sb_order", "jan2026"}}, "", "ties_sb");
  EXPECT_EQ(a.choice("sb_order"), "jan2026");
  EXPECT_EQ(a.canonical(), b.canonical());
  EXPECT_EQ(validate_params(m.params, {{"sb_order", "scale_then_boost"}}, "", "").choice("sb_order"), "oct2025");
  const std::string err = test::error_of([&] { validate_params(m.params, {{"sb_order", "later"}}, "", "ties_sb"); });
  EXPECT_NE(err.find("scale_then_boost"), std::string::npos) << err;
}

}  // namespace
}  // namespace ms::merge
