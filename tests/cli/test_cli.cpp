// The CLI end to end: help texts, synth determinism, inspect on what synth wrote.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/test_util.hpp"
#include "mergesweep/core/sha256.hpp"

namespace ms {
namespace {

namespace fs = std::filesystem;

// Every verb (and every archive command) answers --help with exit 0 and names each of its options:
// the help is the reference a user reads, so an option missing from it is a bug.
TEST(Cli, HelpExplainsEveryVerb) {
  const std::map<std::string, std::vector<std::string>> options = {
      {"inspect", {"--json", "--summary", "--check-values"}},
      {"merge", {"--max-shard-size", "--quiet"}},
      {"synth", {"--out", "--preset", "--checkpoints", "--seed", "--dtype", "--max-shard-size"}},
      {"testbed", {"--out", "--seed", "--preset", "--dtype", "--threads", "--quiet"}},
      {"eval", {"--tasks", "--probes", "--layers", "--seeds", "--dtype", "--device", "--batch-tokens", "--max-length", "--limit",
                "--json", "--all-metrics", "--quiet"}},
      {"sweep", {"--output", "--group-size", "--threads-per-rank", "--plan", "--list", "--slice", "--progress-interval",
                 "--quiet"}},
      {"archive", {"info", "verify", "export", "merge"}},
      {"report", {"--out", "--metric", "--quiet"}},
      {"archive info", {"--spec"}},
      {"archive verify", {"--help"}},
      {"archive export", {"--out", "--format"}},
      {"archive merge", {"--out"}},
  };
  const auto top = test::run_cli("--help");
  EXPECT_EQ(top.exit_code, 0);
  for (const auto& [verb, opts] : options) {
    if (verb.find(' ') == std::string::npos) {
      EXPECT_NE(top.out.find("  " + verb + " "), std::string::npos) << "mergesweep --help does not list " << verb;
    }
    const auto r = test::run_cli(verb + " --help");
    EXPECT_EQ(r.exit_code, 0) << verb << ": " << r.err;
    EXPECT_NE(r.out.find("usage"), std::string::npos) << verb << " --help has no usage line:\n" << r.out;
    for (const auto& o : opts) EXPECT_NE(r.out.find(o), std::string::npos) << verb << " --help does not name " << o;
  }
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
