// Writer and reader in one process: round trip, resume with de-duplication, refusals.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include "archive/archive_fixture.hpp"
#include "common/test_util.hpp"
#include "mergesweep/archive/archive.hpp"
#include "mergesweep/archive/tools.hpp"
#include "mergesweep/core/error.hpp"

namespace ms::archive {
namespace {

using namespace ms::archive::test;

using ms::test::error_of;

void expect_all_match(const Contents& c) {
  for (const auto& r : c.configs) EXPECT_EQ(check_config(r), "");
}

TEST(Archive, RoundTripKeepsEveryFieldAndTheProvenance) {
  ms::test::TempDir tmp;
  const std::string path = tmp / "a.h5";
  {
    auto w = Writer::open(path, make_prov(), make_checkpoints(), make_tasks());
    EXPECT_TRUE(w->done().empty());
    w->append(make_batch(0, 10));
    w->append(make_batch(10, 5));
    EXPECT_EQ(w->done().size(), 15u);
  }
  EXPECT_FALSE(std::filesystem::exists(path + ".lock")) << "a clean close removes the lock file";
  const Contents c = read(path);
  ASSERT_EQ(c.configs.size(), 15u);
  for (int i = 0; i < 15; ++i) EXPECT_EQ(c.configs[i].config.sample, i) << "commit order";
  expect_all_match(c);
  EXPECT_EQ(c.checkpoints.size(), make_checkpoints().size());
  EXPECT_EQ(c.checkpoints[3].sha256, make_checkpoints()[3].sha256);
  EXPECT_EQ(c.checkpoints[3].bytes, 1003u);
  EXPECT_EQ(c.tasks.size(), make_tasks().size());
  EXPECT_EQ(c.tasks.back().kind, "probe");
  EXPECT_EQ(c.attributes.at("format_version"), std::to_string(kFormatVersion));
  EXPECT_EQ(c.attributes.at("plan_hash"), "plan-A");
  EXPECT_EQ(c.attributes.at("spec_text"), "name: demo\n");
  EXPECT_EQ(c.attributes.at("ranks"), "4");
  EXPECT_EQ(c.attributes.at("group_size"), "2");
  EXPECT_EQ(c.attributes.at("host"), "testhost");
  EXPECT_TRUE(verify(path).empty());
}

TEST(Archive, ResumeSkipsDoneConfigsAndRecordsTheNewSpec) {
  ms::test::TempDir tmp;
  const std::string path = tmp / "a.h5";
  Writer::open(path, make_prov(), make_checkpoints(), make_tasks())->append(make_batch(0, 10));
  {
    auto w = Writer::open(path, make_prov("plan-A", "name: demo\nextended: true\n"), make_checkpoints(), make_tasks());
    ASSERT_EQ(w->done().size(), 10u);
    for (int i = 0; i < 10; ++i) EXPECT_TRUE(w->done().count(config_id(i)));
    auto batch = make_batch(5, 10);                  // 5..9 are done, 10..14 new
    batch.push_back(make_config(12));                // a duplicate inside the batch
    w->append(batch);
    w->append(make_batch(0, 3));                     // all done: nothing written
    EXPECT_EQ(w->done().size(), 15u);
  }
  const Contents c = read(path);
  ASSERT_EQ(c.configs.size(), 15u);
  std::set<std::uint64_t> ids;
  for (const auto& r : c.configs) EXPECT_TRUE(ids.insert(r.config.id).second);
  expect_all_match(c);
  EXPECT_EQ(c.attributes.at("spec_text"), "name: demo\n") << "root attributes: the creating session";
  const Summary s = summarize(path);
  ASSERT_EQ(s.sessions.size(), 2u) << "/specs keeps one row per writer session";
  EXPECT_NE(s.sessions[0].second, s.sessions[1].second);
  EXPECT_TRUE(verify(path).empty());
}

TEST(Archive, RefusesAnotherPlanNamingBothHashes) {
  ms::test::TempDir tmp;
  const std::string path = tmp / "a.h5";
  Writer::open(path, make_prov(), make_checkpoints(), make_tasks())->append(make_batch(0, 2));
  const std::string e = error_of([&] { Writer::open(path, make_prov("plan-B"), make_checkpoints(), make_tasks()); });
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_NE(e.find("plan-A"), std::string::npos) << e;
  EXPECT_NE(e.find("plan-B"), std::string::npos) << e;
  EXPECT_EQ(read(path).configs.size(), 2u) << "a refused open changes nothing";
}

TEST(Archive, RefusesAChangedCheckpointNamingItAndBothHashes) {
  ms::test::TempDir tmp;
  const std::string path = tmp / "a.h5";
  Writer::open(path, make_prov(), make_checkpoints(), make_tasks())->append(make_batch(0, 2));
  const std::string newsha(64, 'f');
  const std::string e = error_of([&] { Writer::open(path, make_prov(), make_checkpoints(newsha), make_tasks()); });
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_NE(e.find("checkpoint 2 (ft-2)"), std::string::npos) << e;
  EXPECT_NE(e.find(make_checkpoints()[2].sha256), std::string::npos) << e;
  EXPECT_NE(e.find(newsha), std::string::npos) << e;
  auto fewer = make_checkpoints();
  fewer.pop_back();
  EXPECT_NE(error_of([&] { Writer::open(path, make_prov(), fewer, make_tasks()); }).find("13 checkpoint files"),
            std::string::npos);
  auto tasks = make_tasks();
  tasks[1].sha256 = std::string(64, '0');
  EXPECT_NE(error_of([&] { Writer::open(path, make_prov(), make_checkpoints(), tasks); }).find("task 'task_1'"),
            std::string::npos);
}

TEST(Archive, TooLongStringNamesTheFieldAndWritesNothing) {
  ms::test::TempDir tmp;
  const std::string path = tmp / "a.h5";
  auto w = Writer::open(path, make_prov(), make_checkpoints(), make_tasks());
  w->append(make_batch(0, 3));
  auto bad = make_batch(3, 2);
  bad[1].results[0].task = std::string(200, 'x');
  const std::string e = error_of([&] { w->append(bad); });
  EXPECT_NE(e.find("/results/task"), std::string::npos) << e;
  EXPECT_NE(e.find("128"), std::string::npos) << e;
  w->append(make_batch(3, 1));  // the writer is still usable
  w->close();
  const Contents c = read(path);
  EXPECT_EQ(c.configs.size(), 4u);
  expect_all_match(c);
  const std::string ek = error_of([&] {
    auto s = make_batch(10, 1);
    s[0].stats.at(0).l2_by_kind["conv"] = 1;
    Writer::open(path, make_prov(), make_checkpoints(), make_tasks())->append(s);
  });
  EXPECT_NE(ek.find("/model_stats/l2_conv"), std::string::npos) << ek;
}

TEST(Archive, SecondWriterInTheSameProcessIsRefusedUntilTheFirstCloses) {
  ms::test::TempDir tmp;
  const std::string path = tmp / "a.h5";
  auto w = Writer::open(path, make_prov(), make_checkpoints(), make_tasks());
  const std::string e = error_of([&] { Writer::open(path, make_prov(), make_checkpoints(), make_tasks()); });
  EXPECT_NE(e.find("another process is writing this archive"), std::string::npos) << e;
  EXPECT_NE(e.find(".lock"), std::string::npos) << e;
  w->append(make_batch(0, 1));
  // A reader is welcome while the writer is open (SWMR).
  EXPECT_EQ(read(path).configs.size(), 1u);
  EXPECT_GT(summarize(path).writer_pid, 0);
  w->close();
  EXPECT_EQ(summarize(path).writer_pid, 0);
  EXPECT_EQ(Writer::open(path, make_prov(), make_checkpoints(), make_tasks())->done().size(), 1u);
}

TEST(Archive, ReadRejectsMissingAndNonArchiveFiles) {
  ms::test::TempDir tmp;
  EXPECT_NE(error_of([&] { read(tmp / "none.h5"); }).find("no such file"), std::string::npos);
  {
    std::ofstream(tmp / "x.h5") << "hello, not hdf5";
  }
  EXPECT_NE(error_of([&] { read(tmp / "x.h5"); }).find("not an HDF5 file"), std::string::npos);
  EXPECT_NE(error_of([&] { Writer::open(tmp / "x.h5", make_prov(), make_checkpoints(), make_tasks()); })
                .find("not an HDF5 file"),
            std::string::npos);
}

}  // namespace
}  // namespace ms::archive
