// Archive format 5: each config's model fingerprint (/fingerprints) written and read with its
// config over the full uint64 range, checked by verify, exported, carried by merge; a version-4
// archive is still read (without fingerprints) and not resumed.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "archive/archive_fixture.hpp"
#include "common/test_util.hpp"
#include "mergesweep/archive/archive.hpp"
#include "mergesweep/archive/tools.hpp"
#include "mergesweep/core/fingerprint.hpp"

namespace ms::archive {
namespace {

using namespace ms::archive::test;

// Configs 0..n-1 of the fixture, every other one with a fingerprint of its own (top bit set on some).
std::vector<ConfigResult> batch_with_fingerprints(int n) {
  auto b = make_batch(0, n);
  for (auto& r : b)
    if (r.config.sample % 2 == 0)
      r.fingerprints.push_back({r.config.id, r.config.id * 31 + 7, r.config.sample % 4 == 0 ? "float32" : "bfloat16"});
  return b;
}

std::string all_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(ArchiveFingerprints, RoundTripVerifyExportAndMerge) {
  ms::test::TempDir tmp;
  const std::string path = tmp / "a.h5";
  const auto batch = batch_with_fingerprints(6);
  {
    auto w = Writer::open(path, make_prov(), make_checkpoints(), make_tasks());
    w->append(batch);
  }
  const Contents c = read(path);
  ASSERT_EQ(c.configs.size(), 6u);
  for (std::size_t i = 0; i < c.configs.size(); ++i) {
    const auto& got = c.configs[i].fingerprints;
    const auto& want = batch[i].fingerprints;
    ASSERT_EQ(got.size(), want.size()) << "config " << i;
    if (want.empty()) continue;
    EXPECT_EQ(got[0].config_id, want[0].config_id);
    EXPECT_EQ(got[0].fingerprint, want[0].fingerprint);
    EXPECT_EQ(got[0].dtype, want[0].dtype);
  }
  EXPECT_TRUE(verify(path).empty());
  export_tables(path, tmp / "out", "csv");
  const std::string csv = all_text(tmp / "out/fingerprints.csv");
  const std::string header = csv.substr(0, csv.find('\n'));
  EXPECT_EQ(header.rfind("config_id,kind,", 0), 0u) << header;  // the config columns, then the fingerprint's
  EXPECT_EQ(header.substr(header.size() - 18), ",fingerprint,dtype") << header;
  EXPECT_NE(csv.find("," + fingerprint_hex(batch[2].fingerprints[0].fingerprint) + ",bfloat16\n"), std::string::npos) << csv;
  merge_archives({path}, tmp / "m.h5");
  std::size_t carried = 0;
  for (const auto& r : read(tmp / "m.h5").configs) carried += r.fingerprints.size();
  EXPECT_EQ(carried, 3u);
}

TEST(ArchiveFingerprints, VerifyReportsAnOrphanAndTheWriterRefusesABadDtype) {
  ms::test::TempDir tmp;
  const std::string path = tmp / "a.h5";
  {
    auto w = Writer::open(path, make_prov(), make_checkpoints(), make_tasks());
    w->append(batch_with_fingerprints(4));
    auto bad = make_batch(10, 1);
    bad[0].fingerprints.push_back({bad[0].config.id, 1, "float16"});
    EXPECT_NE(ms::test::error_of([&] { w->append(bad); }).find("/fingerprints/dtype"), std::string::npos);
  }
  poke_u64(path, "/fingerprints/config_id", 0, 12345);
  const auto problems = verify(path);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("/fingerprints: 1 committed rows reference configs that are not in /configs"), std::string::npos)
      << problems[0];
}

TEST(ArchiveFingerprints, AVersion4ArchiveIsReadWithoutFingerprintsAndNotResumed) {
  ms::test::TempDir tmp;
  const std::string path = tmp / "v4.h5";
  {
    auto w = Writer::open(path, make_prov(), make_checkpoints(), make_tasks());
    w->append(batch_with_fingerprints(4));
  }
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  EXPECT_GE(H5Ldelete(f, "/fingerprints", H5P_DEFAULT), 0);
  EXPECT_GE(H5Ldelete(f, "/commits/fingerprints", H5P_DEFAULT), 0);
  const hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
  const std::int64_t v = 4;
  EXPECT_GE(H5Awrite(a, H5T_NATIVE_INT64, &v), 0);
  H5Aclose(a);
  H5Fclose(f);
  const Contents c = read(path);
  ASSERT_EQ(c.configs.size(), 4u);
  for (const auto& r : c.configs) EXPECT_TRUE(r.fingerprints.empty());
  EXPECT_TRUE(verify(path).empty());
  export_tables(path, tmp / "out", "csv");
  const std::string empty = all_text(tmp / "out/fingerprints.csv");
  EXPECT_EQ(empty.find('\n'), empty.size() - 1) << "the header only: " << empty;
  const std::string e = ms::test::error_of([&] { Writer::open(path, make_prov(), make_checkpoints(), make_tasks()); });
  EXPECT_NE(e.find("format version 4"), std::string::npos) << e;
}

}  // namespace
}  // namespace ms::archive
