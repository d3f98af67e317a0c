// The trained testbed on its miniature preset: determinism, HF folders that load, valid packs,
// testbed.json, the CLI, atomic output.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "common/test_util.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/eval/probes.hpp"
#include "mergesweep/eval/task_pack.hpp"
#include "mergesweep/io/hf_model.hpp"
#include "mergesweep/model/decoder.hpp"
#include "mergesweep/testbed/char_tokenizer.hpp"
#include "mergesweep/testbed/tasks.hpp"
#include "mergesweep/testbed/testbed.hpp"

namespace fs = std::filesystem;

namespace {

ms::testbed::TestbedOptions tiny(std::uint64_t seed = 3) {
  auto o = ms::testbed::testbed_preset("tiny");
  o.seed = seed;
  return o;
}

// Relative path -> contents of every file under `dir`.
std::map<std::string, std::string> tree(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) out[fs::relative(e.path(), dir).string()] = ms::test::read_file(e.path().string());
  }
  return out;
}

// One tiny family shared by the tests that only read it (training it once keeps the suite fast).
const std::string& shared_family() {
  static ms::test::TempDir* dir = new ms::test::TempDir();  // lives until exit
  static const std::string path = [] {
    const std::string p = *dir / "tb";
    ms::testbed::write_testbed(p, tiny());
    return p;
  }();
  return path;
}

std::vector<std::string> model_names(std::size_t fine_tunes) {
  std::vector<std::string> v = {"base"};
  for (std::size_t k = 0; k < fine_tunes; ++k) {
    char b[32];
    std::snprintf(b, sizeof b, "ft-%02zu", k);
    v.push_back(b);
  }
  return v;
}

TEST(Testbed, SameSeedSameBytesOtherSeedOtherWeights) {
  ms::test::TempDir tmp;
  auto one_worker = tiny();
  one_worker.train_workers = 1;  // the shared family trains 2 fine-tunes at once: same bytes
  ms::testbed::write_testbed(tmp / "again", one_worker);
  const auto a = tree(shared_family()), b = tree(tmp / "again");
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, bytes] : a) {
    ASSERT_TRUE(b.count(name)) << name;
    EXPECT_TRUE(bytes == b.at(name)) << name << " differs between two runs with the same seed";
  }
  for (const auto& f : ms::testbed::task_families()) {
    const auto pa = ms::eval::read_task_pack(shared_family() + "/tasks/" + f.name + ".h5");
    const auto pb = ms::eval::read_task_pack(tmp / "again/tasks/" + f.name + ".h5");
    ASSERT_EQ(pa.items.size(), pb.items.size());
    for (std::size_t i = 0; i < pa.items.size(); ++i) {
      EXPECT_EQ(pa.items[i].context, pb.items[i].context);
      EXPECT_EQ(pa.items[i].gold, pb.items[i].gold);
      for (std::size_t c = 0; c < pa.items[i].choices.size(); ++c)
        EXPECT_EQ(pa.items[i].choices[c].continuation, pb.items[i].choices[c].continuation);
    }
  }
  ms::testbed::write_testbed(tmp / "other", tiny(4));
  EXPECT_NE(ms::test::read_file(shared_family() + "/base/model.safetensors"),
            ms::test::read_file(tmp / "other/base/model.safetensors"));
}

TEST(Testbed, FoldersAreLlamaModelsThatLoad) {
  const auto j = nlohmann::json::parse(ms::test::read_file(shared_family() + "/testbed.json"));
  const auto names = model_names(j["fine_tunes"].size());
  ASSERT_EQ(names.size(), 13u);
  const ms::testbed::CharTokenizer tok;
  for (const auto& n : names) {
    SCOPED_TRACE(n);
    const std::string dir = shared_family() + "/" + n;
    const auto m = ms::io::HfModel::open(dir);
    ASSERT_TRUE(m.config().has_value());
    EXPECT_EQ(m.config()->model_type, "llama");
    EXPECT_EQ(m.config()->architectures, std::vector<std::string>{"LlamaForCausalLM"});
    EXPECT_EQ(m.config()->vocab_size, tok.vocab_size());
    for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"})
      EXPECT_TRUE(fs::exists(dir + "/" + f)) << f;
    EXPECT_EQ(ms::test::read_file(dir + "/tokenizer.json"), tok.tokenizer_json());
    const auto dec = ms::model::Decoder::load(dir, at::kFloat);
    at::NoGradGuard g;
    const at::Tensor ids = at::tensor(std::vector<std::int64_t>{10, 20, 30, 5}, at::kLong).view({1, 4});
    const at::Tensor logits = dec->logits(dec->forward(ids));
    EXPECT_EQ(logits.sizes(), (std::vector<std::int64_t>{1, 4, tok.vocab_size()}));
    EXPECT_TRUE(logits.isfinite().all().item<bool>());
  }
  // Fine-tunes differ from the base.
  const auto base = ms::io::HfModel::open(shared_family() + "/base");
  const auto ft = ms::io::HfModel::open(shared_family() + "/ft-00");
  EXPECT_GT((ft.tensor("lm_head.weight") - base.tensor("lm_head.weight")).abs().max().item<double>(), 0.0);
}

TEST(Testbed, PacksReadBackBalancedAndValid) {
  const ms::testbed::CharTokenizer tok;
  const auto o = tiny();
  for (const auto& f : ms::testbed::task_families()) {
    SCOPED_TRACE(f.name);
    const auto p = ms::eval::read_task_pack(shared_family() + "/tasks/" + f.name + ".h5");
    EXPECT_EQ(p.vocab_size, tok.vocab_size());
    ASSERT_EQ(static_cast<int>(p.items.size()), o.task_items);
    int per_gold[4] = {0, 0, 0, 0};
    for (const auto& it : p.items) {
      ASSERT_EQ(it.choices.size(), 4u);
      ++per_gold[it.gold];
      for (const auto& c : it.choices) {
        ASSERT_FALSE(c.continuation.empty());
        EXPECT_EQ(c.continuation[0], tok.encode(" ")[0]);  // the target delimiter
        EXPECT_EQ(c.chars, static_cast<std::int64_t>(c.continuation.size()) - 1);
      }
    }
    for (int g : per_gold) EXPECT_EQ(g, o.task_items / 4);
  }
  for (const auto& prop : ms::testbed::probe_properties()) {
    SCOPED_TRACE(prop.name);
    const auto p = ms::eval::read_probe_pack(shared_family() + "/probes/" + prop.name + ".h5");
    EXPECT_EQ(p.label_names, prop.label_names);
    int n[3] = {0, 0, 0};
    for (auto s : p.split) ++n[static_cast<int>(s)];
    EXPECT_EQ(n[0], o.probe_train);
    EXPECT_EQ(n[1], o.probe_dev);
    EXPECT_EQ(n[2], o.probe_test);
  }
}

TEST(Testbed, JsonDescribesTheFamily) {
  const auto j = nlohmann::json::parse(ms::test::read_file(shared_family() + "/testbed.json"));
  EXPECT_EQ(j["seed"], 3);
  EXPECT_EQ(j["families"].size(), ms::testbed::task_families().size());
  EXPECT_EQ(j["probes"].size(), ms::testbed::probe_properties().size());
  EXPECT_EQ(j["fine_tunes"][0]["role"], "instruct");
  EXPECT_EQ(j["fine_tunes"][1]["role"], "math");
  EXPECT_EQ(j["fine_tunes"][1]["families"], nlohmann::json::array({"arith", "sequence", "count"}));
  EXPECT_EQ(j["fine_tunes"][11]["role"], "narrow");
  EXPECT_EQ(j["fine_tunes"][11]["emphasis"], 0.85);
  EXPECT_EQ(j["accuracy"].size(), 13u);
  for (const auto& [model, row] : j["accuracy"].items()) {
    for (const auto& [fam, acc] : row.items()) {
      EXPECT_GE(acc.get<double>(), 0.0);
      EXPECT_LE(acc.get<double>(), 1.0);
    }
  }
}

TEST(Testbed, RefusesAnExistingFolderAndBadOptions) {
  ms::test::TempDir tmp;
  fs::create_directories(tmp / "there");
  EXPECT_THROW(ms::testbed::write_testbed(tmp / "there", tiny()), ms::Error);
  auto o = tiny();
  o.task_items = 10;  // not a multiple of 4
  EXPECT_THROW(ms::testbed::write_testbed(tmp / "bad", o), ms::Error);
  o = tiny();
  o.fine_tunes[0].families = {"nope"};
  EXPECT_THROW(ms::testbed::write_testbed(tmp / "bad", o), ms::Error);
  // Nothing left behind: only the folder made above.
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(tmp.path())) left.push_back(e.path().filename().string());
  EXPECT_EQ(left, std::vector<std::string>{"there"});
}

TEST(Testbed, FailureMidwayLeavesNothing) {
  ms::test::TempDir tmp;
  auto o = tiny();
  int calls = 0;
  o.progress = [&](const std::string& s) {
    if (s.rfind("ft-01", 0) == 0 && ++calls == 1) throw ms::Error("", "test", "interrupted");
  };
  EXPECT_THROW(ms::testbed::write_testbed(tmp / "tb", o), ms::Error);
  EXPECT_TRUE(fs::is_empty(tmp.path()));
}

TEST(TestbedCli, HelpAndTinyRun) {
  ms::test::TempDir tmp;
  auto r = ms::test::run_cli("testbed --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--out"), std::string::npos);
  r = ms::test::run_cli("testbed --out '" + (tmp / "tb") + "' --preset tiny --seed 3 --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  EXPECT_EQ(ms::test::read_file(tmp / "tb/ft-11/model.safetensors"),
            ms::test::read_file(shared_family() + "/ft-11/model.safetensors"));
  r = ms::test::run_cli("testbed --out '" + (tmp / "tb") + "' --preset tiny");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("already exists"), std::string::npos) << r.err;
  r = ms::test::run_cli("testbed --out '" + (tmp / "x") + "' --preset huge");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--preset"), std::string::npos) << r.err;
}

}  // namespace
