// A sweep with a generate_until task pack end to end, real MPI ranks: the generations (token ids,
// response bytes, why decoding stopped) are archived per config with the config's other rows,
// bitwise the same for np=1 and np=2 (groups of 1 and 2); a sweep killed mid-way resumes to the
// same archive; `archive summary`, `archive export` and `report` show the generations and name the
// configs that still lack scores; `sweep --plan` counts the generation task as the expensive one.
//
// The generation pack is made here in memory (write_task_pack) over the testbed's character
// tokenizer: prompts in its alphabet, every id's bytes its character, `until` "=" and EOS.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "common/test_util.hpp"
#include "mergesweep/archive/archive.hpp"
#include "mergesweep/eval/task_pack.hpp"
#include "mergesweep/testbed/char_tokenizer.hpp"

namespace ms {
namespace {

namespace fs = std::filesystem;

test::TempDir& dir() {
  static test::TempDir* d = new test::TempDir();  // lives for the whole binary
  return *d;
}

// A generate_until pack of 6 prompts over the testbed tokenizer (made once).
std::string generation_pack() {
  static std::string path;
  if (!path.empty()) return path;
  const testbed::CharTokenizer tok;
  eval::TaskPack p;
  p.name = "gen_digits";
  p.source_task = "test/generation";
  p.task_version = "1";
  p.tokenizer = "testbed-char";
  p.vocab_size = tok.vocab_size();
  p.output_type = eval::OutputType::GenerateUntil;
  for (const char* prompt : {"12+34=", "7+8=", "abc", "q: 3+4? a:", "(1+2)", "99-9="}) {
    eval::TaskItem it;
    it.context = {testbed::CharTokenizer::kBos};
    for (auto id : tok.encode(prompt)) it.context.push_back(id);
    p.items.push_back(it);
  }
  p.generation.max_gen_toks = 5;
  p.generation.until = {"=", "</s>"};
  p.generation.stop_token_ids = {testbed::CharTokenizer::kEos};
  for (std::int64_t id = 0; id < tok.vocab_size(); ++id)
    p.generation.token_bytes.push_back(id < 4 ? std::string() : tok.tokens()[static_cast<std::size_t>(id)]);
  path = dir() / "gen_digits.h5";
  eval::write_task_pack(path, p);
  return path;
}

std::string family_dir() {
  static std::string fam;
  if (fam.empty()) {
    fam = dir() / "tb";
    const auto r = test::run_cli("testbed --preset tiny --quiet --seed 3 --out " + fam);
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }
  return fam;
}

// `big`: 13 + 36 configs committed one by one (batch_seconds 0), so that a kill lands while most
// are still to run.
std::string spec_text(const std::string& out, bool big = false) {
  const std::string fam = family_dir();
  return "name: gen-test\nbase: '" + fam + "/base'\ncheckpoints: '" + fam + "/ft-*'\nsubsets: {sizes: " +
         (big ? "[2, 3, 4], samples: 12" : "[2], samples: 2") + ", seed: 5}\nmethods:\n"
         "  - {method: task_arithmetic, lambda: 1.0}\n"
         "eval:\n  tasks: ['" + fam + "/tasks/*.h5', '" + generation_pack() + "']\n  limit: 4\noutput: '" + out + "'\n" +
         (big ? "schedule: {batch_seconds: 0}\n" : "");
}

std::string write_spec(const std::string& name, bool big = false) {
  const std::string out = dir() / (name + ".h5");
  std::ofstream(out + ".yaml") << spec_text(out, big);
  return out;
}

using test::mpirun;

using test::sh;

std::string cli() { return MS_CLI; }

// Everything a config archived, in a form compared with == (doubles bitwise).
struct Row {
  std::vector<std::tuple<std::string, std::string, double, double, std::int64_t>> results;
  std::vector<std::tuple<std::string, std::int64_t, std::string, std::vector<std::int32_t>, std::string>> generations;
};

std::map<std::uint64_t, Row> load(const std::string& path) {
  std::map<std::uint64_t, Row> out;
  for (const auto& c : archive::read(path).configs) {
    EXPECT_EQ(out.count(c.config.id), 0u) << "config twice in " << path;
    Row r;
    for (const auto& x : c.results) r.results.emplace_back(x.task, x.metric, x.value, x.stderr_, x.n);
    std::sort(r.results.begin(), r.results.end());
    for (const auto& g : c.generations) r.generations.emplace_back(g.task, g.item, g.stop, g.tokens, g.text);
    out[c.config.id] = std::move(r);
  }
  return out;
}

void expect_same(const std::map<std::uint64_t, Row>& a, const std::map<std::uint64_t, Row>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (const auto& [id, ra] : a) {
    const auto it = b.find(id);
    ASSERT_NE(it, b.end()) << what << ": config " << id << " missing";
    EXPECT_EQ(ra.results, it->second.results) << what << ": results of config " << id;
    EXPECT_EQ(ra.generations, it->second.generations) << what << ": generations of config " << id;
  }
}

const std::map<std::uint64_t, Row>& reference() {
  static std::map<std::uint64_t, Row> ref;
  if (ref.empty()) {
    const std::string out = write_spec("ref");
    const auto r = test::run_cli("sweep --quiet " + out + ".yaml");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    ref = load(out);
  }
  return ref;
}

TEST(SweepGeneration, GenerationsAreArchivedPerConfigBitwiseTheSameForAnyRankCount) {
  const auto& ref = reference();
  ASSERT_EQ(ref.size(), 13u + 2u);  // base, 12 singles, 2 merges
  for (const auto& [id, row] : ref) {
    ASSERT_EQ(row.generations.size(), 4u) << "eval.limit 4: one generation per item, config " << id;
    for (std::size_t i = 0; i < row.generations.size(); ++i) {
      const auto& [task, item, stop, tokens, text] = row.generations[i];
      EXPECT_EQ(task, "gen_digits");
      EXPECT_EQ(item, static_cast<std::int64_t>(i));
      EXPECT_LE(tokens.size(), 5u);
      EXPECT_TRUE(stop == "until" || stop == "stop_token" || stop == "length") << stop;
      if (stop == "length") {
        EXPECT_EQ(tokens.size(), 5u);
      }
      EXPECT_EQ(text.find('='), std::string::npos) << "the response is cut before the until string";
    }
    for (const auto& r : row.results) EXPECT_NE(std::get<0>(r), "gen_digits") << "no /results rows for generation";
    EXPECT_FALSE(row.results.empty()) << "the multiple-choice packs still score";
  }
  // The rows are each config's own: the merged models generate different ids somewhere.
  std::set<std::vector<std::int32_t>> distinct;
  std::size_t generated = 0;
  for (const auto& [id, row] : ref)
    for (const auto& g : row.generations) {
      distinct.insert(std::get<3>(g));
      generated += std::get<3>(g).size();
    }
  EXPECT_GT(generated, 0u);
  EXPECT_GT(distinct.size(), 4u) << "generations identical across configs: not the configs' own";
  for (const auto& [np, g] : std::vector<std::pair<int, int>>{{2, 1}, {2, 2}}) {
    const std::string out = write_spec("np" + std::to_string(np) + "g" + std::to_string(g));
    ASSERT_EQ(sh(mpirun(np) + cli() + " sweep --quiet -g " + std::to_string(g) + " " + out + ".yaml"), 0);
    expect_same(ref, load(out), "np=" + std::to_string(np) + " g=" + std::to_string(g));
    EXPECT_EQ(sh(cli() + " archive verify " + out + " >/dev/null"), 0);
  }
}

TEST(SweepGeneration, AKilledSweepResumesToTheSameArchive) {
  const std::string whole = write_spec("big", /*big=*/true);
  ASSERT_EQ(sh(cli() + " sweep --quiet " + whole + ".yaml"), 0);
  const auto ref = load(whole);
  ASSERT_EQ(ref.size(), 13u + 36u);
  const std::string out = write_spec("killed", /*big=*/true);
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    execl("/bin/sh", "sh", "-c", ("exec " + mpirun(2) + cli() + " sweep --quiet " + out + ".yaml").c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  // Kill rank 0 (the archive writer; the lowest pid of mpirun's children) once a few configs are
  // committed, while most are still to run.
  std::size_t seen = 0;
  const auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60) && seen < 3) {
    try {
      if (fs::exists(out)) seen = archive::read(out).configs.size();
    } catch (const std::exception&) {
    }
    if (seen < 3) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const int killed = sh("pids=$(pgrep -P " + std::to_string(pid) + " -f 'mergesweep sweep' | sort -n); set -- $pids; "
                        "[ -n \"$1\" ] && kill -KILL $1");
  EXPECT_EQ(killed, 0) << "no rank to kill";
  int st = 0;
  waitpid(pid, &st, 0);
  const std::size_t partial = archive::read(out).configs.size();
  std::printf("killed with %zu of %zu configs committed (%zu seen before the kill, after %.1f s)\n", partial, ref.size(),
              seen, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  EXPECT_LT(partial, ref.size()) << "the kill came after the end: the resume was not exercised";
  ASSERT_EQ(sh(mpirun(2) + cli() + " sweep --quiet " + out + ".yaml"), 0);
  expect_same(ref, load(out), "after a kill and a rerun");
  EXPECT_EQ(sh(cli() + " archive verify " + out + " >/dev/null"), 0);
}

TEST(SweepGeneration, SummaryExportAndReportNameTheConfigsLackingScores) {
  reference();
  const std::string out = dir() / "ref.h5";
  const auto info = test::run_cli("archive summary " + out);
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_NE(info.out.find("gen_digits"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("15 unscored"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("python3 -m analysis score " + out), std::string::npos) << info.out;

  const auto ex = test::run_cli("archive export " + out + " --out " + (dir() / "csv"));
  ASSERT_EQ(ex.exit_code, 0) << ex.err;
  std::ifstream in(dir() / "csv/generations.csv");
  std::size_t lines = 0;
  for (std::string l; std::getline(in, l);) ++lines;
  EXPECT_EQ(lines, 1u + 15 * 4);

  const auto rep = test::run_cli("report " + out + " --out " + (dir() / "report"));
  ASSERT_EQ(rep.exit_code, 0) << rep.err;
  const std::string md = test::read_file(dir() / "report/report.md");
  EXPECT_NE(md.find("15 lack scores"), std::string::npos) << md;  // every config, for the one generation task
  EXPECT_NE(md.find("python3 -m analysis score " + out), std::string::npos) << md;
}

TEST(SweepGeneration, ThePlanCountsTheGenerationTaskAsTheExpensiveOne) {
  const std::string out = write_spec("plan");
  const auto r = test::run_cli("sweep --plan " + out + ".yaml");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("gen_digits"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("generate_until"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("4 items x (1 + 5 decode steps)"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(out)) << "--plan runs nothing";
}

}  // namespace
}  // namespace ms
