// Kills of the archive writer at random moments (issue: a torn archive). A single-rank sweep of
// the tiny testbed is started again and again and SIGKILLed after a random delay (a pure function
// of the trial number), while busy loops load every core. After every kill the archive, if one
// exists yet, must open, verify and resume; once a run completes, the archive is dropped and the
// loop starts over, so kills land in creation, in commits, in resumes and in closes alike. At the
// end the resumed archive holds the clean run's numbers, each config once.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "common/test_util.hpp"
#include "mergesweep/core/hash.hpp"
#include "mergesweep/archive/archive.hpp"
#include "mergesweep/archive/tools.hpp"

namespace ms {
namespace {

namespace fs = std::filesystem;

std::string cli() { return MS_CLI; }

std::string spec_text(const std::string& fam, const std::string& out) {
  return "name: kills\nbase: '" + fam + "/base'\ncheckpoints: '" + fam +
         "/ft-*'\nsubsets: {sizes: [2, 3, 5], samples: 3, seed: 5}\nmethods:\n"
         "  - {method: task_arithmetic, lambda: [0.5, 1.0]}\n  - {method: ties, density: 0.3}\n"
         "eval:\n  tasks: '" + fam + "/tasks/*.h5'\n  limit: 8\noutput: '" + out + "'\n"
         "schedule: {batch_seconds: 0}\n";
}

// config id -> (task, metric) -> value: what a reader of the archive gets.
std::map<std::uint64_t, std::map<std::string, double>> numbers(const std::string& path) {
  std::map<std::uint64_t, std::map<std::string, double>> out;
  for (const auto& c : archive::read(path).configs)
    for (const auto& r : c.results) out[c.config.id][r.task + "/" + r.metric] = r.value;
  return out;
}

// A delay in [0, 1.5) s from the trial number alone (splitmix64): the same trials every run.
double delay_of(std::uint64_t trial) {
  return static_cast<double>(splitmix64_mix(trial * kGoldenGamma + 0x6A09E667F3BCC909ull) % 1500) / 1000.0;
}

TEST(SweepKills, TwoHundredKillsOfTheWriterUnderLoadLeaveNoTornArchive) {
  test::TempDir dir;
  const std::string fam = dir / "tb", out = dir / "k.h5", spec = dir / "k.yaml";
  ASSERT_EQ(test::run_cli("testbed --preset tiny --quiet --seed 3 --out " + fam).exit_code, 0);
  std::ofstream(spec) << spec_text(fam, out);
  ASSERT_EQ(test::run_cli("sweep --quiet " + spec + " --output " + (dir / "clean.h5")).exit_code, 0);
  const auto clean = numbers(dir / "clean.h5");
  std::vector<std::unique_ptr<test::Proc>> load;  // busy loops on every core
  for (unsigned i = 0; i < std::max(2u, std::thread::hardware_concurrency()); ++i)
    load.push_back(std::make_unique<test::Proc>("sh -c 'while :; do :; done'"));
  int kills = 0, completed = 0, killed_mid_write = 0;
  for (std::uint64_t trial = 0; trial < 200; ++trial) {
    test::Proc p(cli() + " sweep --quiet " + spec + " 2>/dev/null");
    std::this_thread::sleep_for(std::chrono::duration<double>(delay_of(trial)));
    const bool alive = ::kill(p.pid, SIGKILL) == 0;
    const int status = p.wait_status();
    kills += alive && status == 128 + SIGKILL ? 1 : 0;
    if (!fs::exists(out)) continue;  // killed before the archive was created
    const auto problems = archive::verify(out);  // what `mergesweep archive verify` checks
    ASSERT_TRUE(problems.empty()) << "trial " << trial << ": " << problems.front();
    const auto now = numbers(out);
    for (const auto& [id, values] : now) ASSERT_EQ(values, clean.at(id)) << "trial " << trial;
    if (status == 0) {
      ++completed;
      fs::remove(out);  // start over: kills must keep landing in creation and commits
    } else if (!now.empty() && now.size() < clean.size()) {
      ++killed_mid_write;
    }
  }
  for (auto& l : load) ::kill(l->pid, SIGKILL), l->wait_status();
  std::printf("kills: %d of 200 trials, %d with a partial archive, %d runs completed\n", kills, killed_mid_write,
              completed);
  EXPECT_GE(kills, 100);          // most trials really killed a running writer
  EXPECT_GE(killed_mid_write, 20);
  ASSERT_EQ(test::run_cli("sweep --quiet " + spec).exit_code, 0);
  EXPECT_EQ(numbers(out), clean);
}

}  // namespace
}  // namespace ms
