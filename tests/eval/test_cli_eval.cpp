// `mergesweep eval` end to end: the table, the JSON (equal to the library's tallies), --limit,
// probes over chosen layers, and command-line errors.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/test_util.hpp"
#include "mergesweep/eval/probes.hpp"
#include "mergesweep/eval/scoring.hpp"
#include "mergesweep/model/device.hpp"
#include "mergesweep/model/decoder.hpp"

namespace ms::eval {
namespace {

const std::string kDir = "tests/fixtures/lmeval";

TEST(EvalVerb, TableAndJsonMatchTheLibrary) {
  test::TempDir tmp;
  const auto r = test::run_cli("eval " + kDir + "/model --tasks " + kDir + "/ms_parity.h5 --json '" + (tmp / "r.json") +
                                   "' --batch-tokens 300",
                               MS_SOURCE_DIR);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("|Tasks"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("acc_norm"), std::string::npos);
  EXPECT_EQ(r.out.find("acc_bytes"), std::string::npos);  // only with --all-metrics
  const auto j = nlohmann::json::parse(test::read_file(tmp / "r.json"));
  const TaskPack pack = read_task_pack(test::source_path(kDir + "/ms_parity.h5"));
  const auto model = model::Decoder::load(test::source_path(kDir + "/model"), at::kFloat);
  TaskTally t;
  const auto s = score_items(*model, pack, 0, pack.items.size(), {});
  for (std::size_t i = 0; i < s.size(); ++i) t.add(pack.items[i], s[i]);
  const auto& res = j["results"]["ms_parity"];
  EXPECT_EQ(res["n"].get<std::int64_t>(), 41);
  for (const auto& m : t.metrics()) {
    EXPECT_EQ(res[m.name].get<double>(), m.value) << m.name;
    EXPECT_EQ(res[m.name + "_stderr"].get<double>(), m.stderr_) << m.name;
  }
}

TEST(EvalVerb, LimitAndProbes) {
  test::TempDir tmp;
  // A probe pack over the fixture tokenizer's ids: the class is whether token 100 appears.
  ProbePack p;
  p.name = "has_100";
  p.tokenizer = "fixture";
  p.vocab_size = 320;
  p.label_names = {"no", "yes"};
  for (int i = 0; i < 90; ++i) {
    std::vector<std::int32_t> s;
    for (int t = 0; t < 3 + i % 5; ++t) s.push_back(2 + (i * 31 + t * 17) % 90);
    if (i % 2) s[static_cast<std::size_t>(i) % s.size()] = 100;
    p.sentences.push_back(s);
    p.labels.push_back(i % 2);
    p.split.push_back(i % 6 < 4 ? Split::kTrain : i % 6 == 4 ? Split::kDev : Split::kTest);
  }
  write_probe_pack(tmp / "probe.h5", p);
  const auto r = test::run_cli("eval " + kDir + "/model --tasks " + kDir + "/ms_parity.h5 --limit 5 --probes '" +
                                   (tmp / "probe.h5") + "' --layers 0,2 --seeds 2 --json '" + (tmp / "r.json") + "'",
                               MS_SOURCE_DIR);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("|Probe"), std::string::npos) << r.out;
  const auto j = nlohmann::json::parse(test::read_file(tmp / "r.json"));
  EXPECT_EQ(j["results"]["ms_parity"]["n"].get<int>(), 5);
  const auto& layers = j["probes"]["has_100"]["layers"];
  ASSERT_EQ(layers.size(), 2u);
  EXPECT_EQ(layers["0"]["macro_f1"].size(), 2u);
  EXPECT_TRUE(layers.contains("2"));
}

TEST(EvalVerb, CommandLineErrors) {
  const std::string base = "eval " + kDir + "/model --tasks " + kDir + "/ms_parity.h5 ";
  auto r = test::run_cli(base + "--layers 0,9 --probes x.h5", MS_SOURCE_DIR);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("x.h5: no such file"), std::string::npos) << r.err;
  r = test::run_cli(base + "--dtype float64", MS_SOURCE_DIR);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--dtype"), std::string::npos) << r.err;
  r = test::run_cli(base + "--device tpu", MS_SOURCE_DIR);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--device"), std::string::npos) << r.err;
  if (model::visible_cuda_devices() == 0) {  // asking for a GPU that is not there is an error, not a CPU run
    r = test::run_cli(base + "--device cuda", MS_SOURCE_DIR);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("--device"), std::string::npos) << r.err;
  }
  r = test::run_cli(base + "--device cpu --limit 2", MS_SOURCE_DIR);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = test::run_cli("eval " + kDir + "/model", MS_SOURCE_DIR);
  EXPECT_EQ(r.exit_code, 2);
  r = test::run_cli("eval --help", MS_SOURCE_DIR);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--tasks"), std::string::npos);
}

// Two models: the fixture model twice (one-model JSON per model, zero differences) here; real
// differences against scipy and statsmodels in tests/python/test_eval_compare_reference.py.
TEST(EvalVerb, SeveralModelsAreComparedWithTheFirst) {
  test::TempDir tmp;
  const std::string model = kDir + "/model", pack = kDir + "/ms_parity.h5";
  auto r =
      test::run_cli("eval " + model + " --tasks " + pack + " --json '" + (tmp / "one.json") + "'", MS_SOURCE_DIR);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string compare = "eval " + model + " " + model + " --tasks " + pack;
  r = test::run_cli(compare + " --resamples 300 --bootstrap-seed 3 --json '" + (tmp / "two.json") + "'", MS_SOURCE_DIR);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("|mean "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Paired differences to " + model), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("300 resamples, seed 3"), std::string::npos) << r.out;
  const auto one = nlohmann::json::parse(test::read_file(tmp / "one.json"));
  const auto two = nlohmann::json::parse(test::read_file(tmp / "two.json"));
  ASSERT_EQ(two["models"].size(), 2u);
  for (const auto& m : two["models"])
    for (const char* metric : {"acc", "acc_norm", "acc_bytes", "exact_match"})
      EXPECT_EQ(m["results"]["ms_parity"][metric], one["results"]["ms_parity"][metric]) << metric;
  const auto& acc = two["items"]["ms_parity"]["acc"];
  ASSERT_EQ(acc.size(), 2u);
  ASSERT_EQ(acc[0].size(), 41u);
  double right = 0;
  for (const auto& x : acc[0]) right += x.get<double>();
  EXPECT_DOUBLE_EQ(right / 41.0, one["results"]["ms_parity"]["acc"].get<double>());
  const auto& paired = two["paired"];
  EXPECT_EQ(paired["seed"].get<int>(), 3);
  EXPECT_EQ(paired["resamples"].get<int>(), 300);
  ASSERT_EQ(paired["rows"].size(), 8u);  // 4 metrics on the task, then on the mean
  for (const auto& row : paired["rows"]) {
    EXPECT_EQ(row["diff"].get<double>(), 0.0);
    EXPECT_EQ(row["ci_low"].get<double>(), 0.0);
    EXPECT_EQ(row["ci_high"].get<double>(), 0.0);
    if (row["task"] == "ms_parity") {
      EXPECT_EQ(row["mcnemar_p"].get<double>(), 1.0);
    }
  }
}

TEST(EvalVerb, ModelsThatCannotBeComparedAreRefused) {
  const std::string model = kDir + "/model", tasks = " --tasks " + kDir + "/ms_parity.h5";
  // Another tokenizer with the same vocabulary size: the pack's ids would mean other text.
  auto r = test::run_cli("eval " + model + " tests/fixtures/lmeval_fewshot/model" + tasks, MS_SOURCE_DIR);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("mergesweep: error: tests/fixtures/lmeval_fewshot/model/tokenizer.json: MODEL 2"),
            std::string::npos) << r.err;
  EXPECT_NE(r.err.find("token id 260"), std::string::npos) << r.err;
  r = test::run_cli("eval " + model + " no-such-model" + tasks, MS_SOURCE_DIR);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("MODEL 2"), std::string::npos) << r.err;
  r = test::run_cli("eval " + model + " " + model + tasks + " --probes x.h5", MS_SOURCE_DIR);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--probes"), std::string::npos) << r.err;
  r = test::run_cli("eval " + model + " " + model + tasks + " --resamples 0", MS_SOURCE_DIR);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--resamples"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace ms::eval
