// The CLI end to end: help texts, synth determinism, inspect on what synth wrote.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/test_util.hpp"
#include "mergesweep/core/sha256.hpp"

namespace ms {
namespace {

namespace fs = std::filesystem;

TEST(Cli, HelpExplainsEveryVerb) {
  const auto r = test::run_cli("--help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* verb : {"inspect", "synth"}) EXPECT_NE(r.out.find(verb), std::string::npos) << verb;
  const auto i = test::run_cli("inspect --help");
  EXPECT_EQ(i.exit_code, 0);
  EXPECT_NE(i.out.find("--check-values"), std::string::npos);
  EXPECT_EQ(test::run_cli("").exit_code, 2);
}

std::map<std::string, std::string> hash_tree(const std::string& root) {
  std::map<std::string, std::string> h;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_regular_file()) h[fs::relative(e.path(), root)] = sha256_file(e.path());
  }
  return h;
}

TEST(Cli, SynthIsDeterministicAndInspectable) {
  test::TempDir tmp;
  const std::string args = " --checkpoints 2 --seed 7 --max-shard-size 50KB";
  ASSERT_EQ(test::run_cli("synth --out " + (tmp / "a") + args).exit_code, 0);
  ASSERT_EQ(test::run_cli("synth --out " + (tmp / "b") + args).exit_code, 0);
  const auto a = hash_tree(tmp / "a");
  EXPECT_EQ(a, hash_tree(tmp / "b"));  // same seed, same bytes
  EXPECT_EQ(a.size(), 3u * 7);         // 3 models x (config, generation config, index, 4 shards)
  ASSERT_EQ(test::run_cli("synth --out " + (tmp / "c") + " --checkpoints 2 --seed 8 --max-shard-size 50KB").exit_code, 0);
  EXPECT_NE(a.at("ft-00/model-00001-of-00004.safetensors"), hash_tree(tmp / "c").at("ft-00/model-00001-of-00004.safetensors"));

  const auto r = test::run_cli("inspect --json --check-values " + (tmp / "a/ft-01"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["integrity"]["ok"].get<bool>());
  EXPECT_EQ(j["config"]["model_type"], "llama");
  EXPECT_EQ(j["num_parameters"].get<std::uint64_t>(), 90'432u);
  EXPECT_EQ(j["tensors"].size(), 20u);
  EXPECT_EQ(j["shards"].size(), 4u);
}

}  // namespace
}  // namespace ms
