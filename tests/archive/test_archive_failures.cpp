// Archive format 3: failed attempts (/failures) committed with the batch they arrive in, read
// back with their config, kept when the config succeeds later, cut to the column's width on a
// character boundary, exported, carried by `archive merge`, counted by the summary.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <filesystem>
#include <fstream>

#include "archive/archive_fixture.hpp"
#include "common/test_util.hpp"
#include "mergesweep/archive/archive.hpp"
#include "mergesweep/archive/tools.hpp"
#include "mergesweep/core/sha256.hpp"

namespace ms::archive {
namespace {

using namespace ms::archive::test;

FailureRecord failure_of(int i, const std::string& kind, const std::string& message) {
  return {make_config(i).config, kind, message, /*group=*/i % 3, /*session=*/-7, /*time=*/1.7e9 + i};
}

std::string file_text(const std::string& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(ArchiveFailures, AFailedAttemptIsKeptWithItsConfigAndTheSessionThatRecordedIt) {
  ms::test::TempDir tmp;
  const std::string path = tmp / "f.h5";
  {
    auto w = Writer::open(path, make_prov(), make_checkpoints(), make_tasks());
    w->append(make_batch(0, 3), {failure_of(3, "oom", "merge on group rank 1: oom: out of memory")});
    w->append({}, {failure_of(4, "error", "eval on group rank 0: error: bad item")});  // failures alone commit too
  }
  {  // a resumed session: config 3 succeeds now, config 4 fails again
    auto w = Writer::open(path, make_prov(), make_checkpoints(), make_tasks());
    w->append(make_batch(3, 1), {failure_of(4, "torch", "eval on group rank 1: torch: CUDA error")});
  }
  const Contents c = read(path);
  ASSERT_EQ(c.configs.size(), 4u);
  ASSERT_EQ(c.failures.size(), 3u);
  const FailureRecord& first = c.failures[0];
  EXPECT_EQ(first.config.id, config_id(3));
  EXPECT_EQ(first.config.method, make_config(3).config.method);
  EXPECT_EQ(first.config.members, make_config(3).config.members);
  EXPECT_EQ(first.failure, "oom");
  EXPECT_EQ(first.message, "merge on group rank 1: oom: out of memory");
  EXPECT_EQ(first.group, 0);
  EXPECT_DOUBLE_EQ(first.time, 1.7e9 + 3);
  EXPECT_EQ(first.session, 0);  // the writer sets it: the first /specs row
  EXPECT_EQ(c.failures[1].failure, "error");
  EXPECT_EQ(c.failures[1].session, 0);
  EXPECT_EQ(c.failures[2].failure, "torch");
  EXPECT_EQ(c.failures[2].session, 1);  // the resumed session

  const Summary s = summarize(path);
  EXPECT_EQ(s.failures, 3u);
  EXPECT_EQ(s.failed_not_done, 1u);  // config 3 is done now; config 4 is not
  EXPECT_TRUE(verify(path).empty());
}

TEST(ArchiveFailures, ALongMessageIsCutOnACharacterBoundaryAndNulsAreReplaced) {
  ms::test::TempDir tmp;
  const std::string path = tmp / "long.h5";
  // 1022 ASCII bytes then a 3-byte character: cutting at 1021 + "..." would split it.
  std::string msg(1019, 'x');
  msg += std::string("\xe2\x82\xac", 3) + std::string(2000, 'y');
  msg[5] = '\0';
  {
    auto w = Writer::open(path, make_prov(), make_checkpoints(), make_tasks());
    w->append({}, {failure_of(1, "exception", msg)});
  }
  const auto f = read(path).failures;
  ASSERT_EQ(f.size(), 1u);
  const std::string& m = f[0].message;
  std::string want(1019, 'x');
  want[5] = '?';
  EXPECT_EQ(m, want + "...");
  EXPECT_EQ(m.size(), 1019u + 3u);  // the euro sign would not fit whole with the "...": it goes
}

TEST(ArchiveFailures, ExportAndMergeCarryTheFailures) {
  ms::test::TempDir tmp;
  const std::string a = tmp / "a.h5", b = tmp / "b.h5";
  {
    auto w = Writer::open(a, make_prov(), make_checkpoints(), make_tasks());
    w->append(make_batch(0, 2), {failure_of(2, "oom", "out of memory, \"twice\"")});
  }
  {
    auto w = Writer::open(b, make_prov(), make_checkpoints(), make_tasks());
    w->append(make_batch(2, 2), {failure_of(5, "error", "bad")});
  }
  export_tables(a, tmp / "out", "csv");
  const std::string csv = file_text(tmp / "out/failures.csv");
  EXPECT_EQ(csv.rfind("config_id,kind,method,params,n,sample,members,member_names,failure,message,group,session,time\n", 0), 0u) << csv;
  EXPECT_NE(csv.find(std::to_string(config_id(2)) + ","), std::string::npos) << csv;
  EXPECT_NE(csv.find(",oom,\"out of memory, \"\"twice\"\"\",2,0,"), std::string::npos) << csv;

  const auto rep = merge_archives({a, b}, tmp / "m.h5");
  EXPECT_EQ(rep.configs, 4u);
  const Contents m = read(tmp / "m.h5");
  ASSERT_EQ(m.failures.size(), 2u);
  EXPECT_EQ(m.failures[0].config.id, config_id(2));
  EXPECT_EQ(m.failures[1].config.id, config_id(5));
  const Summary s = summarize(tmp / "m.h5");
  EXPECT_EQ(s.failed_not_done, 1u);  // config 2 is done in b; config 5 nowhere
  EXPECT_TRUE(verify(tmp / "m.h5").empty());
  // An archive named twice (or merged before) repeats its attempts: each is kept once.
  merge_archives({a, a, tmp / "m.h5"}, tmp / "again.h5");
  EXPECT_EQ(read(tmp / "again.h5").failures.size(), 2u);
}

// A format-2 archive: this one with the tables of versions 3 to 5 (/failures, the item tables,
// /fingerprints) and their commit columns removed and format_version 2, through the HDF5 C API.
void downgrade_to_version_2(const std::string& path) {
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  for (const char* t : {"failures", "item_runs", "items", "item_docs", "fingerprints"}) {
    EXPECT_GE(H5Ldelete(f, (std::string("/") + t).c_str(), H5P_DEFAULT), 0);
    EXPECT_GE(H5Ldelete(f, (std::string("/commits/") + t).c_str(), H5P_DEFAULT), 0);
  }
  const hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
  const std::int64_t v = 2;
  EXPECT_GE(H5Awrite(a, H5T_NATIVE_INT64, &v), 0);
  H5Aclose(a);
  H5Fclose(f);
}

TEST(ArchiveFailures, AVersion2ArchiveIsReadButNotResumed) {
  ms::test::TempDir tmp;
  const std::string path = tmp / "v2.h5";
  {
    auto w = Writer::open(path, make_prov(), make_checkpoints(), make_tasks());
    w->append(make_batch(0, 4));
  }
  downgrade_to_version_2(path);
  const Contents c = read(path);
  EXPECT_EQ(c.attributes.at("format_version"), "2");
  ASSERT_EQ(c.configs.size(), 4u);
  for (const auto& r : c.configs) EXPECT_EQ(check_config(r), "");
  EXPECT_TRUE(c.failures.empty());
  EXPECT_TRUE(verify(path).empty());
  EXPECT_EQ(summarize(path).failures, 0u);
  export_tables(path, tmp / "out", "csv");
  EXPECT_EQ(file_text(tmp / "out/failures.csv"), "config_id,kind,method,params,n,sample,members,member_names,failure,message,group,session,time\n");
  const std::string before = sha256_file(path);
  const std::string e = ms::test::error_of([&] { Writer::open(path, make_prov(), make_checkpoints(), make_tasks()); });
  EXPECT_NE(e.find("format version 2"), std::string::npos) << e;
  EXPECT_NE(e.find("writes version " + std::to_string(kFormatVersion)), std::string::npos) << e;
  EXPECT_EQ(sha256_file(path), before);
}

}  // namespace
}  // namespace ms::archive
