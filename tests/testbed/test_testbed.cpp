// The trained testbed on its miniature preset: determinism, HF folders that load, valid packs,
// testbed.json, the CLI, atomic output.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "common/test_util.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/eval/evaluate.hpp"
#include "mergesweep/eval/probes.hpp"
#include "mergesweep/eval/task_pack.hpp"
#include "mergesweep/io/hf_model.hpp"
#include "mergesweep/model/decoder.hpp"
#include "mergesweep/testbed/char_tokenizer.hpp"
#include "mergesweep/testbed/tasks.hpp"
#include "mergesweep/testbed/testbed.hpp"
#include "testbed/trainer.hpp"

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

// Where a family's pack is: tasks/ (multiple choice) or generate/ (generation).
std::string pack_of(const ms::testbed::TaskFamily& f) {
  return shared_family() + (f.generation ? "/generate/" : "/tasks/") + f.name + ".h5";
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
    const auto pa = ms::eval::read_task_pack(pack_of(f));
    const auto pb = ms::eval::read_task_pack(tmp / (std::string("again/") + (f.generation ? "generate/" : "tasks/") + f.name + ".h5"));
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
    const auto p = ms::eval::read_task_pack(pack_of(f));
    EXPECT_EQ(p.vocab_size, tok.vocab_size());
    ASSERT_EQ(static_cast<int>(p.items.size()), o.task_items);
    EXPECT_EQ(p.output_type, f.generation ? ms::eval::OutputType::GenerateUntil : ms::eval::OutputType::MultipleChoice);
    if (f.generation) continue;  // GenerationPacksSayHowToDecode
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

// A generation pack: prompts only, decoded greedily until EOS (the answer's end in training),
// every id's bytes its character, the specials none.
TEST(Testbed, GenerationPacksSayHowToDecode) {
  const ms::testbed::CharTokenizer tok;
  int packs = 0;
  for (const auto& f : ms::testbed::task_families()) {
    if (!f.generation) continue;
    SCOPED_TRACE(f.name);
    ++packs;
    const auto p = ms::eval::read_task_pack(pack_of(f));
    EXPECT_EQ(p.name, "testbed_" + f.name);
    const auto& g = p.generation;
    EXPECT_GT(g.max_gen_toks, 0);
    EXPECT_EQ(g.until, (std::vector<std::string>{"\n", "</s>"}));
    EXPECT_EQ(g.stop_token_ids, std::vector<std::int32_t>{ms::testbed::CharTokenizer::kEos});
    EXPECT_FALSE(g.strip_leading_space);
    ASSERT_EQ(static_cast<std::int64_t>(g.token_bytes.size()), tok.vocab_size());
    for (std::int32_t id = 0; id < tok.vocab_size(); ++id) {
      EXPECT_EQ(g.token_bytes[static_cast<std::size_t>(id)], id < 4 ? "" : tok.tokens()[static_cast<std::size_t>(id)]) << id;
      if (id >= 4) {
        EXPECT_EQ(tok.encode(g.token_bytes[static_cast<std::size_t>(id)]), std::vector<std::int32_t>{id});
      }
    }
    std::set<std::vector<std::int32_t>> prompts;
    for (const auto& it : p.items) {
      EXPECT_TRUE(it.choices.empty());
      EXPECT_EQ(tok.decode(it.context).back(), '=');
      EXPECT_LE(static_cast<std::int64_t>(it.context.size()) + g.max_gen_toks, 64);  // the model's positions
      prompts.insert(it.context);
    }
    EXPECT_EQ(prompts.size(), p.items.size()) << "prompts are distinct";
  }
  EXPECT_GE(packs, 2);
}

// The answer a generation item asks for, worked out from its prompt (independently of the generator).
std::string expected_answer(const std::string& prompt) {
  const auto colon = prompt.find(':');
  const std::string arg = prompt.substr(colon + 1, prompt.size() - colon - 2);
  if (prompt.rfind("reverse:", 0) == 0) return std::string(arg.rbegin(), arg.rend());
  int sum = 0;
  for (char c : arg) sum += c - '0';
  return std::to_string(sum);
}

// The testbed's greedy decoder: a batch decodes every item as if alone (right padding under the
// causal mask), and testbed.json's exact match is the share of generations that are " " + answer.
TEST(Testbed, GreedyGenerationIsPerItemAndExactMatchIsRecorded) {
  const ms::testbed::CharTokenizer tok;
  const auto j = nlohmann::json::parse(ms::test::read_file(shared_family() + "/testbed.json"));
  const auto cfg = ms::io::parse_model_config(ms::test::read_file(shared_family() + "/ft-00/config.json"), "config.json");
  for (const std::string model : {"base", "ft-00"}) {
    const auto hf = ms::io::HfModel::open(shared_family() + "/" + model);
    ms::testbed::Params params;
    for (const auto& [name, t] : ms::testbed::init_params(cfg, 0)) params.emplace_back(name, hf.tensor(name).to(at::kFloat));
    for (const auto& f : ms::testbed::task_families()) {
      if (!f.generation) continue;
      SCOPED_TRACE(model + " " + f.name);
      const auto pack = ms::eval::read_task_pack(pack_of(f));
      const auto all = ms::testbed::greedy_generate(params, cfg, pack);
      ASSERT_EQ(all.size(), pack.items.size());
      int correct = 0;
      for (std::size_t i = 0; i < pack.items.size(); ++i) {
        EXPECT_LE(static_cast<std::int64_t>(all[i].size()), pack.generation.max_gen_toks);
        const std::string prompt = tok.decode(pack.items[i].context);
        correct += tok.decode(all[i]) == " " + expected_answer(prompt) ? 1 : 0;
        if (i >= 6) continue;  // alone, a few of them
        ms::eval::TaskPack one = pack;
        one.items = {pack.items[i]};
        EXPECT_EQ(ms::testbed::greedy_generate(params, cfg, one)[0], all[i]) << prompt;
      }
      EXPECT_DOUBLE_EQ(j["exact_match"][model][f.name].get<double>(),
                       static_cast<double>(correct) / static_cast<double>(pack.items.size()));
      // The engine's native exact_match (response == target, in evaluate()) is the same share.
      ASSERT_TRUE(pack.generation.native_exact_match);
      const auto dec = ms::model::Decoder::load(shared_family() + "/" + model, at::kFloat);
      const auto res = ms::eval::evaluate(*dec, {pack}, {}, ms::eval::EvalOptions{});
      ASSERT_EQ(res.tasks[0].generation_metrics.size(), 1u);
      EXPECT_EQ(res.tasks[0].generation_metrics[0].name, "exact_match");
      EXPECT_DOUBLE_EQ(res.tasks[0].generation_metrics[0].value,
                       static_cast<double>(correct) / static_cast<double>(pack.items.size()));
    }
  }
}


TEST(Testbed, JsonDescribesTheFamily) {
  const auto j = nlohmann::json::parse(ms::test::read_file(shared_family() + "/testbed.json"));
  EXPECT_EQ(j["seed"], 3);
  EXPECT_EQ(j["recipe_version"], ms::testbed::testbed_recipe_version());
  EXPECT_EQ(j["families"].size(), ms::testbed::task_families().size());
  EXPECT_EQ(j["probes"].size(), ms::testbed::probe_properties().size());
  EXPECT_EQ(j["fine_tunes"][0]["role"], "instruct");
  EXPECT_EQ(j["fine_tunes"][1]["role"], "math");
  EXPECT_EQ(j["fine_tunes"][1]["families"], nlohmann::json::array({"arith", "sequence", "count", "gen_digitsum"}));
  EXPECT_EQ(j["fine_tunes"][11]["role"], "narrow");
  EXPECT_EQ(j["fine_tunes"][11]["emphasis"], 0.85);
  EXPECT_EQ(j["accuracy"].size(), 13u);
  EXPECT_EQ(j["exact_match"].size(), 13u);
  for (const char* key : {"accuracy", "exact_match"}) {
    for (const auto& [model, row] : j[key].items()) {
      for (const auto& [fam, acc] : row.items()) {
        EXPECT_EQ(ms::testbed::task_family(fam).generation, std::string(key) == "exact_match") << fam;
        EXPECT_GE(acc.get<double>(), 0.0);
        EXPECT_LE(acc.get<double>(), 1.0);
      }
    }
  }
  for (const auto& fam : j["families"]) {
    const bool gen = ms::testbed::task_family(fam["name"]).generation;
    EXPECT_EQ(fam["output_type"], gen ? "generate_until" : "multiple_choice");
    EXPECT_TRUE(fs::exists(shared_family() + "/" + fam["task_pack"].get<std::string>())) << fam["task_pack"];
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
