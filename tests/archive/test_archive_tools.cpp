// Whole-archive tools: merge, verify (catches corruption), export, summary.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "archive/archive_fixture.hpp"
#include "common/test_util.hpp"
#include "mergesweep/archive/archive.hpp"
#include "mergesweep/archive/tools.hpp"
#include "mergesweep/core/error.hpp"

namespace ms::archive {
namespace {

using namespace ms::archive::test;

using ms::test::error_of;

void write_archive(const std::string& path, int first, int count, const std::string& plan = "plan-A") {
  auto w = Writer::open(path, make_prov(plan), make_checkpoints(), make_tasks());
  w->append(make_batch(first, count));
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "\n";
  return s;
}

TEST(ArchiveTools, MergeCombinesArchivesOfOnePlanWithoutDuplicates) {
  ms::test::TempDir tmp;
  write_archive(tmp / "a.h5", 0, 10);
  write_archive(tmp / "b.h5", 5, 10);
  write_archive(tmp / "c.h5", 30, 2);
  const auto rep = merge_archives({tmp / "a.h5", tmp / "b.h5", tmp / "c.h5"}, tmp / "m.h5");
  EXPECT_EQ(rep.configs, 17u);
  EXPECT_EQ(rep.duplicates, 5u);
  const Contents c = read(tmp / "m.h5");
  std::set<int> samples;
  for (const auto& r : c.configs) {
    EXPECT_TRUE(samples.insert(r.config.sample).second);
    EXPECT_EQ(check_config(r), "");
  }
  EXPECT_EQ(samples.size(), 17u);
  EXPECT_EQ(c.attributes.at("plan_hash"), "plan-A");
  EXPECT_TRUE(verify(tmp / "m.h5").empty()) << join(verify(tmp / "m.h5"));
  for (const auto& e : std::filesystem::directory_iterator(tmp.path())) {
    const auto n = e.path().filename().string();
    EXPECT_TRUE(n == "a.h5" || n == "b.h5" || n == "c.h5" || n == "m.h5") << "left behind: " << n;
  }
}

TEST(ArchiveTools, MergeRefusesDifferentPlansNamingBothFilesAndWritesNothing) {
  ms::test::TempDir tmp;
  write_archive(tmp / "a.h5", 0, 3);
  write_archive(tmp / "b.h5", 0, 3, "plan-B");
  const std::string e = error_of([&] { merge_archives({tmp / "a.h5", tmp / "b.h5"}, tmp / "m.h5"); });
  EXPECT_NE(e.find(tmp / "a.h5"), std::string::npos) << e;
  EXPECT_NE(e.find(tmp / "b.h5"), std::string::npos) << e;
  EXPECT_NE(e.find("different plan"), std::string::npos) << e;
  EXPECT_FALSE(std::filesystem::exists(tmp / "m.h5"));
  EXPECT_NE(error_of([&] { merge_archives({tmp / "a.h5"}, tmp / "b.h5"); }).find("already exists"), std::string::npos);
}

TEST(ArchiveTools, VerifyCatchesDuplicateIdsOrphanRowsAndTruncation) {
  ms::test::TempDir tmp;
  const std::string path = tmp / "a.h5";
  write_archive(path, 0, 6);
  ASSERT_TRUE(verify(path).empty());

  std::filesystem::copy_file(path, tmp / "dup.h5");
  poke_u64(tmp / "dup.h5", "/configs/config_id", 1, config_id(0));
  const std::string d = join(verify(tmp / "dup.h5"));
  EXPECT_NE(d.find("duplicate config id"), std::string::npos) << d;

  std::filesystem::copy_file(path, tmp / "orphan.h5");
  poke_u64(tmp / "orphan.h5", "/results/config_id", 4, 12345);
  const std::string o = join(verify(tmp / "orphan.h5"));
  EXPECT_NE(o.find("/results: 1 committed rows reference configs that are not in /configs (first: config 12345)"),
            std::string::npos)
      << o;

  const auto size = std::filesystem::file_size(path);
  std::filesystem::copy_file(path, tmp / "trunc.h5");
  std::filesystem::resize_file(tmp / "trunc.h5", size / 2);
  const std::string t = error_of([&] { verify(tmp / "trunc.h5"); });
  EXPECT_NE(t.find(tmp / "trunc.h5"), std::string::npos) << t;
  EXPECT_NE(t.find("cannot open"), std::string::npos) << t;
}

TEST(ArchiveTools, ExportWritesTidyTables) {
  ms::test::TempDir tmp;
  write_archive(tmp / "a.h5", 0, 9);
  const auto files = export_tables(tmp / "a.h5", tmp / "out", "csv");
  EXPECT_EQ(files.size(), 12u);
  auto lines = [&](const std::string& name) {
    std::ifstream in(tmp / ("out/" + name));
    std::vector<std::string> v;
    for (std::string l; std::getline(in, l);) v.push_back(l);
    return v;
  };
  const auto res = lines("results.csv");
  ASSERT_EQ(res.size(), 1u + 9 * kTasks * 2);
  EXPECT_EQ(res[0], "config_id,kind,method,params,n,sample,members,member_names,task,metric,value,stderr,items");
  // Config 1: merge, ties, params with commas and quotes (CSV-quoted), members "2,3".
  EXPECT_EQ(res[1 + kTasks * 2].rfind(std::to_string(config_id(1)) + ",merge,ties,\"{\"\"density\"\":0.1,", 0), 0u)
      << res[1 + kTasks * 2];
  EXPECT_EQ(lines("configs.csv").size(), 10u);
  EXPECT_EQ(lines("timings.csv").size(), 10u);
  EXPECT_EQ(lines("probes.csv").size(), 1u + 9 * kProbes);
  EXPECT_EQ(lines("model_stats.csv").size(), 1u + 6);  // configs 1,2,4,5,7,8 have stats
  EXPECT_EQ(lines("checkpoints.csv").size(), 14u);
  EXPECT_FALSE(std::filesystem::exists(tmp / "out/results.csv.tmp-" + std::to_string(::getpid())));
  const std::string e = error_of([&] { export_tables(tmp / "a.h5", tmp / "out2", "xlsx"); });
  EXPECT_NE(e.find("not csv or parquet"), std::string::npos) << e;
}

// The Parquet conversion runs the interpreter without a shell: an output folder whose name holds a
// quote and a space (which broke the old shell command) reaches it as one argument per file. A
// stand-in interpreter records its arguments and renames each CSV as the real one would.
TEST(ArchiveTools, ExportToParquetPassesPathsWithoutAShell) {
  ms::test::TempDir tmp;
  write_archive(tmp / "a.h5", 0, 3);
  const std::string fake = tmp / "fake-python";
  {
    std::ofstream f(fake);
    f << "#!/bin/sh\n[ \"$1\" = -c ] || exit 3\nshift 2\n"
         "for p in \"$@\"; do echo \"$p\" >> \"$(dirname \"$p\")/args.txt\"; mv \"$p\" \"${p%.csv}.parquet\"; done\n";
  }
  std::filesystem::permissions(fake, std::filesystem::perms::owner_all);
  const std::string out = tmp / "it's a folder";
  ::setenv("MS_PYTHON", fake.c_str(), 1);
  const auto files = export_tables(tmp / "a.h5", out, "parquet");
  ::unsetenv("MS_PYTHON");
  ASSERT_EQ(files.size(), 12u);
  for (const auto& f : files) {
    EXPECT_EQ(f.rfind(out + "/", 0), 0u) << f;
    EXPECT_TRUE(std::filesystem::exists(f)) << f;
  }
  std::ifstream args(out + "/args.txt");
  std::vector<std::string> seen;
  for (std::string l; std::getline(args, l);) seen.push_back(l);
  ASSERT_EQ(seen.size(), 12u);
  EXPECT_EQ(seen[0], out + "/checkpoints.csv");
}

TEST(ArchiveTools, SummaryCountsConfigsPerMethodAndSize) {
  ms::test::TempDir tmp;
  write_archive(tmp / "a.h5", 0, 14);
  const Summary s = summarize(tmp / "a.h5");
  std::uint64_t total = 0;
  for (const auto& [m, by] : s.configs_by_method_size)
    for (const auto& [n, k] : by) total += k;
  EXPECT_EQ(total, 14u);
  EXPECT_EQ(s.configs_by_method_size.at("none").at(1), 2u);  // configs 0 and 7 are singles
  EXPECT_EQ(s.commits, 2);  // creation + one batch
  for (const auto& [t, n] : s.rows) EXPECT_EQ(s.stored.at(t), n) << t;
  EXPECT_EQ(s.writer_pid, 0);
  EXPECT_FALSE(s.open_flag);
}

}  // namespace
}  // namespace ms::archive
