// LoRA adapters as a sweep's checkpoints are held factored (A, B and saved tensors; each folded
// tensor formed when a merge reads it, io::fold_lora_into): the archive is bitwise that of the
// same adapters densified (folded, held as full checkpoints), at np=1 and in a group of two ranks,
// and the plan shows them held factored. Archives are compared through `archive export`: every
// table but the timings, byte for byte.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/lora_family.hpp"
#include "common/test_util.hpp"

namespace ms {
namespace {

namespace fs = std::filesystem;

std::string cli() { return MS_CLI; }

// A table of `archive export`, its rows sorted (rows come in commit order).
std::string sorted_table(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> rows;
  for (std::string line; std::getline(in, line);) rows.push_back(line);
  std::sort(rows.begin(), rows.end());
  std::string out;
  for (const auto& r : rows) out += r + "\n";
  return out;
}

TEST(SweepLoraMpi, FactoredAdaptersGiveTheNumbersOfTheirDensifiedTwins) {
  test::TempDir dir;
  ASSERT_EQ(test::run_cli("testbed --preset tiny --quiet --seed 3 --out " + (dir / "tb")).exit_code, 0);
  const std::string base = dir / "tb/base";
  setenv("MS_CACHE_DIR", (dir / "cache").c_str(), 1);  // the ranks inherit it
  std::vector<test::LoraPlan> plans(3);
  plans[0].targets = {"q_proj", "v_proj"};
  plans[0].seed = 31;
  plans[1].targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  plans[1].r = 8, plans[1].alpha = 16, plans[1].rslora = true, plans[1].dtype = "bfloat16", plans[1].seed = 32;
  plans[1].rank_pattern = {{"down_proj", 2}};
  plans[1].alpha_pattern = {{"o_proj", 4.0}};
  plans[1].modules_to_save = {"model.norm.weight"};
  plans[2].targets = {"up_proj"};
  plans[2].r = 2, plans[2].dtype = "float16", plans[2].seed = 33;
  std::string adapters;
  for (std::size_t k = 0; k < plans.size(); ++k) {  // the same folder names: the archives name members alike
    const std::string adapter = dir / ("adapters/ad-" + std::to_string(k));
    test::write_lora_adapter(base, adapter, plans[k]);
    test::write_densified(adapter, base, dir / ("densified/ad-" + std::to_string(k)));
    adapters += (k ? ", '" : "'") + adapter + "'";
  }
  const auto spec = [&](const std::string& checkpoints, const std::string& out) {
    return "name: lora\nbase: '" + base + "'\ncheckpoints: " + checkpoints +
           "\n"
           "subsets: {sizes: [2, 3], samples: 1, seed: 5}\nmethods:\n"
           "  - {method: task_arithmetic, lambda: 0.7}\n  - {method: ties, density: 0.3}\n"
           "  - {method: ties, density: 0.3, trim: global}\n  - {method: dare_ties, density: 0.5}\n"
           "  - {method: model_stock}\n  - {method: linear}\n"
           "eval:\n  tasks: '" +
           (dir / "tb/tasks/*.h5") + "'\n  limit: 6\noutput: '" + out + "'\n";
  };
  const std::vector<std::pair<std::string, int>> runs = {{"densified", 1}, {"factored", 1}, {"factored", 2}};
  for (const auto& [kind, np] : runs) {
    const std::string out = dir / (kind + "-np" + std::to_string(np));
    std::ofstream(out + ".yaml") << spec(
        kind == "factored" ? "[" + adapters + "]" : "'" + (dir / "densified/ad-*") + "'", out + ".h5");
    ASSERT_EQ(test::sh(test::mpirun(np) + cli() + " sweep --quiet -g " + std::to_string(np) + " " + out + ".yaml"), 0)
        << kind;
    ASSERT_EQ(test::sh(cli() + " archive export " + out + ".h5 --out " + out + "-export >/dev/null"), 0) << kind;
  }
  std::size_t tables = 0;
  for (const auto& e : fs::directory_iterator(dir / "densified-np1-export")) {
    const std::string table = e.path().filename().string();
    if (table == "timings.csv" || table == "checkpoints.csv") continue;  // seconds; file paths and hashes
    ++tables;
    const std::string want = sorted_table(e.path().string());
    for (const char* run : {"factored-np1", "factored-np2"})
      EXPECT_EQ(sorted_table(dir / (std::string(run) + "-export/" + table)), want) << run << " " << table;
  }
  EXPECT_GE(tables, 4u);  // configs, model statistics, results, per-item rows at least
  EXPECT_GT(sorted_table(dir / "densified-np1-export/model_stats.csv").size(), 1000u);
  const auto plan = test::run_cli("sweep --plan " + (dir / "factored-np1.yaml"));
  EXPECT_EQ(plan.exit_code, 0) << plan.err;
  EXPECT_NE(plan.out.find("held factored"), std::string::npos) << plan.out;
  unsetenv("MS_CACHE_DIR");
}

}  // namespace
}  // namespace ms
