// Archive format 2: generations (rows, token ids, response bytes) written and read with their
// config, the configs lacking scores, export's decoded text, verify's checks, and the refusal
// to append to a version-1 archive.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>

#include "archive/archive_fixture.hpp"
#include "common/test_util.hpp"
#include "mergesweep/archive/archive.hpp"
#include "mergesweep/archive/tools.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/core/sha256.hpp"

namespace ms::archive {
namespace {

using namespace ms::archive::test;

using ms::test::error_of;

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "\n";
  return s;
}

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> v;
  for (std::string l; std::getline(in, l);) v.push_back(l);
  return v;
}

// The fixture's generations hold NUL bytes, invalid UTF-8 and empty texts and token lists.
TEST(ArchiveGenerations, RoundTripKeepsEveryByteAndIdWithItsConfig) {
  ms::test::TempDir tmp;
  const std::string path = tmp / "g.h5";
  std::size_t expected = 0;
  {
    auto w = Writer::open(path, make_prov(), make_checkpoints(), make_tasks());
    w->append(make_batch(0, 7));
    w->append(make_batch(7, 6));
  }
  for (int i = 0; i < 13; ++i) expected += static_cast<std::size_t>(generations_of(i));
  ASSERT_GT(expected, 10u);
  const Contents c = read(path);
  ASSERT_EQ(c.configs.size(), 13u);
  std::size_t seen = 0, empty_text = 0, empty_tokens = 0, with_nul = 0;
  for (const auto& r : c.configs) {
    EXPECT_EQ(check_config(r), "") << r.config.sample;
    for (const auto& g : r.generations) {
      ++seen;
      empty_text += g.text.empty();
      empty_tokens += g.tokens.empty();
      with_nul += g.text.find('\0') != std::string::npos;
    }
  }
  EXPECT_EQ(seen, expected);
  EXPECT_GT(empty_text, 0u);
  EXPECT_GT(empty_tokens, 0u);
  EXPECT_GT(with_nul, 0u);
  EXPECT_EQ(c.attributes.at("format_version"), std::to_string(kFormatVersion));
  EXPECT_TRUE(verify(path).empty()) << join(verify(path));
}

TEST(ArchiveGenerations, ABadStopValueNamesTheColumnAndWritesNothing) {
  ms::test::TempDir tmp;
  const std::string path = tmp / "g.h5";
  auto w = Writer::open(path, make_prov(), make_checkpoints(), make_tasks());
  auto batch = make_batch(2, 1);
  ASSERT_FALSE(batch[0].generations.empty());
  batch[0].generations[0].stop = "eos";
  const std::string e = error_of([&] { w->append(batch); });
  EXPECT_NE(e.find("/generations/stop"), std::string::npos) << e;
  EXPECT_NE(e.find("'eos'"), std::string::npos) << e;
  EXPECT_TRUE(w->done().empty());
  w->append(make_batch(2, 1));
  w->close();
  EXPECT_EQ(read(path).configs.size(), 1u);
}

TEST(ArchiveGenerations, SummaryCountsConfigsWhoseGenerationsLackScores) {
  ms::test::TempDir tmp;
  const std::string path = tmp / "g.h5";
  auto batch = make_batch(0, 9);  // generations: configs 2, 3, 6, 8 (2 + 3 + 1 + 3 rows)
  // Config 3 was scored (natively, say): a /results row for its generation task.
  batch[3].results.push_back({batch[3].config.id, "gen_task", "exact_match,strict-match", 0.5, 0.1, 3});
  {
    auto w = Writer::open(path, make_prov(), make_checkpoints(), make_tasks());
    w->append(batch);
  }
  const Summary s = summarize(path);
  ASSERT_EQ(s.generations.size(), 1u);
  EXPECT_EQ(s.generations.at("gen_task").configs, 4u);
  EXPECT_EQ(s.generations.at("gen_task").unscored, 3u);
  bool counted = false;
  for (const auto& [t, n] : s.rows)
    if (t == "generations") counted = n == 9u;
  EXPECT_TRUE(counted);
}

TEST(ArchiveGenerations, ExportWritesOneRowPerGenerationWithTextDecodedAndExactBytes) {
  ms::test::TempDir tmp;
  const std::string path = tmp / "g.h5";
  {
    auto w = Writer::open(path, make_prov(), make_checkpoints(), make_tasks());
    w->append(make_batch(0, 9));
  }
  const auto files = export_tables(path, tmp / "out", "csv");
  EXPECT_EQ(files.size(), 12u);
  const auto g = lines_of(tmp / "out/generations.csv");
  ASSERT_EQ(g.size(), 1u + 9);
  EXPECT_EQ(g[0], "config_id,kind,method,params,n,sample,members,member_names,task,item,stop,n_tokens,tokens,text_bytes,text,text_hex");
  // Config 2, item 0: ids 2 3; "ans 2" NUL FF FE "x" -> NUL and each invalid byte as U+FFFD.
  const std::string fffd = "\xEF\xBF\xBD";
  const std::string row0 = ",gen_task,0,until,2,2 3,9,ans 2" + fffd + fffd + fffd + "x,616e73203200fffe78";
  EXPECT_EQ(g[1].rfind(std::to_string(config_id(2)) + ",", 0), 0u) << g[1];
  EXPECT_EQ(g[1].substr(g[1].size() - row0.size()), row0) << g[1];
  const std::string row1 = ",gen_task,1,stop_token,3,1002 1003 1004,0,,";  // empty text and hex
  EXPECT_EQ(g[2].substr(g[2].size() - row1.size()), row1) << g[2];
}

TEST(ArchiveGenerations, TextIsDecodedAsPythonsReplaceErrorHandlerDoes) {
  const std::string r = "\xEF\xBF\xBD";
  // Expectations from Python 3: bytes.decode("utf-8", "replace").
  EXPECT_EQ(decode_for_csv("caf\xC3\xA9"), "caf\xC3\xA9");
  EXPECT_EQ(decode_for_csv("\xC3"), r);                      // truncated 2-byte sequence
  EXPECT_EQ(decode_for_csv("\xE2\x82"), r);                  // truncated 3-byte sequence: one U+FFFD
  EXPECT_EQ(decode_for_csv("\xE2\x82x"), r + "x");
  EXPECT_EQ(decode_for_csv("\xC0\xAF"), r + r);              // overlong lead: two
  EXPECT_EQ(decode_for_csv("\xED\xA0\x80"), r + r + r);      // surrogate: three
  EXPECT_EQ(decode_for_csv("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");
  EXPECT_EQ(decode_for_csv("\xF4\x90\x80\x80"), r + r + r + r);  // above U+10FFFF
  EXPECT_EQ(decode_for_csv(std::string("a\0b", 3)), "a" + r + "b");
  EXPECT_EQ(decode_for_csv("\xFF\xFE"), r + r);
}

TEST(ArchiveGenerations, VerifyAndReadCatchARunOutsideTheCommittedRows) {
  ms::test::TempDir tmp;
  const std::string path = tmp / "g.h5";
  {
    auto w = Writer::open(path, make_prov(), make_checkpoints(), make_tasks());
    w->append(make_batch(0, 5));
  }
  ASSERT_TRUE(verify(path).empty());
  std::filesystem::copy_file(path, tmp / "bad.h5");
  poke_i64(tmp / "bad.h5", "/generations/text_begin", 0, 1000000);
  const std::string v = join(verify(tmp / "bad.h5"));
  EXPECT_NE(v.find("/generations: 1 rows whose tokens or text lie outside"), std::string::npos) << v;
  const std::string e = error_of([&] { read(tmp / "bad.h5"); });
  EXPECT_NE(e.find("/generations/text_begin"), std::string::npos) << e;
  EXPECT_NE(e.find("row 0"), std::string::npos) << e;
}

std::string file_hash(const std::string& p) { return sha256_file(p); }

// tests/bad-inputs/inputs/archive/plan_a.h5: a version-1 archive written by h5py to the documented
// layout (tests/bad-inputs/make_bad_inputs_archive.py).
TEST(ArchiveGenerations, AVersion1ArchiveIsReadButNotResumed) {
  ms::test::TempDir tmp;
  const std::string v1 = tmp / "v1.h5";
  std::filesystem::copy_file(ms::test::source_path("tests/bad-inputs/inputs/archive/plan_a.h5"), v1);
  const Contents c = read(v1);
  EXPECT_EQ(c.attributes.at("format_version"), "1");
  ASSERT_EQ(c.configs.size(), 3u);
  for (const auto& r : c.configs) EXPECT_TRUE(r.generations.empty());
  EXPECT_TRUE(verify(v1).empty()) << join(verify(v1));
  const Summary s = summarize(v1);
  EXPECT_TRUE(s.generations.empty());
  EXPECT_EQ(export_tables(v1, tmp / "out", "csv").size(), 12u);
  EXPECT_EQ(lines_of(tmp / "out/failures.csv").size(), 1u);
  EXPECT_EQ(lines_of(tmp / "out/generations.csv").size(), 1u);

  const std::string before = file_hash(v1);
  auto prov = make_prov("plan-A");
  const std::string e = error_of([&] { Writer::open(v1, prov, {}, {}); });
  EXPECT_NE(e.find(v1), std::string::npos) << e;
  EXPECT_NE(e.find("format_version"), std::string::npos) << e;
  EXPECT_NE(e.find("format version 1"), std::string::npos) << e;
  EXPECT_NE(e.find("writes version " + std::to_string(kFormatVersion)), std::string::npos) << e;
  EXPECT_EQ(file_hash(v1), before) << "a refused resume leaves the archive as it was";
  EXPECT_FALSE(std::filesystem::exists(v1 + ".lock"));
}

}  // namespace
}  // namespace ms::archive
