// sweep --plan --calibrate on a miniature testbed family: it merges and scores one config on this
// node and turns the measurement into seconds per config, a wall time and an sbatch --time.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>

#include "common/test_util.hpp"

namespace ms {
namespace {

TEST(SweepCalibrate, TimesOneConfigAndSizesTheJob) {
  test::TempDir dir;
  const auto tb = test::run_cli("testbed --preset tiny --quiet --seed 5 --out " + (dir / "tb"));
  ASSERT_EQ(tb.exit_code, 0) << tb.err;
  const std::string fam = dir / "tb";
  std::ofstream(dir / "spec.yaml") << "base: '" << fam << "/base'\ncheckpoints: '" << fam
                                   << "/ft-*'\nsubsets: {sizes: [2, 3], samples: 2, seed: 1}\nmethods:\n"
                                      "  - {method: task_arithmetic, lambda: [0.5, 1.0]}\n  - {method: ties, density: 0.3}\n"
                                      "eval: {tasks: '" << fam << "/tasks/*.h5'}\noutput: '" << (dir / "out.h5") << "'\n";
  const auto r = test::run_cli("sweep " + (dir / "spec.yaml") + " --plan --calibrate --ranks 6 --group-size 2");
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  // The costliest config (TIES) is the one timed, on a block of 8 items scaled to the packs' 16.
  EXPECT_NE(r.out.find("(ties, n=3)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("on 8 items per task (x2.0 for the whole packs"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("on 6 rank(s) in 3 group(s) of 2"), std::string::npos) << r.out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex(R"(sbatch --time=(\d+)-(\d\d):(\d\d):00)"))) << r.out;
  // A tiny model: well under an hour, and never less than the drain margin (5 minutes).
  const int minutes = std::stoi(m[1]) * 1440 + std::stoi(m[2]) * 60 + std::stoi(m[3]);
  EXPECT_GE(minutes, 6);
  EXPECT_LT(minutes, 60);
  EXPECT_FALSE(std::ifstream(dir / "out.h5").good()) << "--calibrate writes no archive";
  // --calibrate without --plan is a usage error.
  EXPECT_EQ(test::run_cli("sweep " + (dir / "spec.yaml") + " --calibrate").exit_code, 2);
}

}  // namespace
}  // namespace ms
