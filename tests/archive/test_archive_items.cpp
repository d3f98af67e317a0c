// Archive format 4: per-item outcomes (/item_runs with /items and /item_docs) written and read
// with their config, verify's checks (every run inside the committed rows, /results equal to what
// the rows add up to), export's tidy tables, older versions still read, and the storage cost of
// the systematic study's 16 benchmarks (about 60k items) per config.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "archive/archive_fixture.hpp"
#include "common/test_util.hpp"
#include "mergesweep/archive/archive.hpp"
#include "mergesweep/archive/tools.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/eval/aggregate.hpp"

namespace ms::archive {
namespace {

using namespace ms::archive::test;

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "\n";
  return s;
}

// Item outcomes of a choice task drawn from `rng` (accuracy about 0.6), with the /results rows
// they add up to (the engine's formulas), replacing any rows of that task.
void add_choice_task(ConfigResult& r, const std::string& task, std::size_t items, std::mt19937_64& rng) {
  ItemOutcomes it;
  it.config_id = r.config.id;
  it.task = task;
  it.kind = "choice";
  std::uniform_real_distribution<double> u(0, 1);
  std::normal_distribution<float> ll(-6.0f, 3.0f);
  std::int64_t k[4] = {0, 0, 0, 0};
  for (std::size_t i = 0; i < items; ++i) {
    std::uint8_t o = 0;
    if (u(rng) < 0.6) o |= ItemOutcomes::kAcc;
    if (u(rng) < (o ? 0.9 : 0.2)) o |= ItemOutcomes::kAccNorm;  // acc_norm mostly agrees with acc
    if (u(rng) < (o & 2 ? 0.95 : 0.05)) o |= ItemOutcomes::kAccBytes;
    if (u(rng) < 0.05) o |= ItemOutcomes::kExactMatch;
    for (int b = 0; b < 4; ++b) k[b] += (o >> b) & 1;
    it.outcome.push_back(o);
    it.chosen.push_back(static_cast<std::int32_t>(rng() % 4));
    it.gold_loglik.push_back(ll(rng));
  }
  r.results.erase(std::remove_if(r.results.begin(), r.results.end(), [&](const ResultRecord& x) { return x.task == task; }),
                  r.results.end());
  const char* names[] = {"acc", "acc_norm", "acc_bytes", "exact_match"};
  const auto n = static_cast<std::int64_t>(items);
  for (int b = 0; b < 4; ++b)
    r.results.push_back({r.config.id, task, names[b], eval::count_mean(k[b], n), eval::count_stderr(k[b], n), n});
  r.items.push_back(std::move(it));
}

void add_rolling_task(ConfigResult& r, const std::string& task, std::size_t docs, std::mt19937_64& rng) {
  ItemOutcomes it;
  it.config_id = r.config.id;
  it.task = task;
  it.kind = "rolling";
  for (std::size_t d = 0; d < docs; ++d) {
    it.doc_tokens.push_back(static_cast<std::int64_t>(500 + rng() % 3000));
    it.doc_loglik.push_back(-2.5 * static_cast<double>(it.doc_tokens.back()) * (1 + 0.01 * static_cast<double>(rng() % 10)));
    it.doc_words.push_back(it.doc_tokens.back() * 3 / 4);
    it.doc_bytes.push_back(it.doc_tokens.back() * 4);
  }
  const eval::RollingMetrics m = eval::rolling_metrics(it.doc_loglik, it.doc_words, it.doc_bytes);
  const auto n = static_cast<std::int64_t>(docs);
  const double na = std::nan("");
  r.results.push_back({r.config.id, task, "word_perplexity", m.word_perplexity, na, n});
  r.results.push_back({r.config.id, task, "byte_perplexity", m.byte_perplexity, na, n});
  r.results.push_back({r.config.id, task, "bits_per_byte", m.bits_per_byte, na, n});
  r.items.push_back(std::move(it));
}

// The fixture's config i with per-item rows for its three tasks and one rolling task.
ConfigResult config_with_items(int i) {
  ConfigResult r = make_config(i);
  std::mt19937_64 rng(static_cast<std::uint64_t>(i));
  for (int t = 0; t < kTasks; ++t) add_choice_task(r, "task_" + std::to_string(t), 50 + 10 * static_cast<std::size_t>(t), rng);
  add_rolling_task(r, "wikitext", 7, rng);
  return r;
}

std::vector<ConfigResult> batch_with_items(int first, int count) {
  std::vector<ConfigResult> b;
  for (int i = first; i < first + count; ++i) b.push_back(config_with_items(i));
  return b;
}

std::string same_items(const std::vector<ItemOutcomes>& a, const std::vector<ItemOutcomes>& b) {
  if (a.size() != b.size()) return "run count " + std::to_string(a.size()) + " vs " + std::to_string(b.size());
  for (std::size_t k = 0; k < a.size(); ++k) {
    const auto &x = a[k], &y = b[k];
    if (x.config_id != y.config_id || x.task != y.task || x.kind != y.kind || x.outcome != y.outcome ||
        x.chosen != y.chosen || x.gold_loglik != y.gold_loglik || x.doc_loglik != y.doc_loglik ||
        x.doc_tokens != y.doc_tokens || x.doc_words != y.doc_words || x.doc_bytes != y.doc_bytes)
      return "run " + std::to_string(k) + " (" + x.task + ")";
  }
  return "";
}

TEST(ArchiveItems, RoundTripWithTheirConfigAndTotalsVerify) {
  ms::test::TempDir tmp;
  const std::string path = tmp / "i.h5";
  {
    auto w = Writer::open(path, make_prov(), make_checkpoints(), make_tasks());
    w->append(batch_with_items(0, 5));
    w->append(batch_with_items(5, 4));
  }
  const Contents c = read(path);
  ASSERT_EQ(c.configs.size(), 9u);
  EXPECT_EQ(c.attributes.at("format_version"), std::to_string(kFormatVersion));
  for (const auto& r : c.configs) EXPECT_EQ(same_items(r.items, config_with_items(r.config.sample).items), "");
  EXPECT_TRUE(verify(path).empty()) << join(verify(path));
  // merge carries the rows; the merged archive verifies too.
  merge_archives({path}, tmp / "m.h5");
  const Contents m = read(tmp / "m.h5");
  for (const auto& r : m.configs) EXPECT_EQ(same_items(r.items, config_with_items(r.config.sample).items), "");
  EXPECT_TRUE(verify(tmp / "m.h5").empty()) << join(verify(tmp / "m.h5"));
}

TEST(ArchiveItems, VerifyReportsResultsThatDifferFromTheItems) {
  ms::test::TempDir tmp;
  const std::string path = tmp / "i.h5";
  auto batch = batch_with_items(0, 3);
  for (auto& x : batch[1].results)
    if (x.task == "task_1" && x.metric == "acc_norm") x.value += 1.0 / 64;  // one item more than the rows say
  for (auto& x : batch[2].results)
    if (x.task == "wikitext" && x.metric == "bits_per_byte") x.n += 1;
  {
    auto w = Writer::open(path, make_prov(), make_checkpoints(), make_tasks());
    w->append(batch);
  }
  const std::string v = join(verify(path));
  EXPECT_NE(v.find("/results: 2 values differ from what /items and /item_docs add up to"), std::string::npos) << v;
  EXPECT_NE(v.find("task_1 acc_norm"), std::string::npos) << v;
}

TEST(ArchiveItems, VerifyAndReadReportRunsOutsideTheCommittedRows) {
  ms::test::TempDir tmp;
  const std::string path = tmp / "i.h5";
  {
    auto w = Writer::open(path, make_prov(), make_checkpoints(), make_tasks());
    w->append(batch_with_items(0, 2));
  }
  poke_i64(path, "/item_runs/begin", 1, 1000000);
  const std::string v = join(verify(path));
  EXPECT_NE(v.find("/item_runs: 1 rows whose run lies outside the committed /items or /item_docs"), std::string::npos)
      << v;
  const std::string e = ms::test::error_of([&] { read(path); });
  EXPECT_NE(e.find("/item_runs/begin"), std::string::npos) << e;
  EXPECT_NE(e.find("row 1"), std::string::npos) << e;
}

TEST(ArchiveItems, ABadKindNamesTheColumnAndWritesNothing) {
  ms::test::TempDir tmp;
  const std::string path = tmp / "i.h5";
  auto w = Writer::open(path, make_prov(), make_checkpoints(), make_tasks());
  auto batch = batch_with_items(0, 1);
  batch[0].items[0].kind = "generate";
  const std::string e = ms::test::error_of([&] { w->append(batch); });
  EXPECT_NE(e.find("/item_runs/kind"), std::string::npos) << e;
  EXPECT_TRUE(w->done().empty());
}

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> v;
  for (std::string l; std::getline(in, l);) v.push_back(l);
  return v;
}

TEST(ArchiveItems, ExportWritesTidyItemTables) {
  ms::test::TempDir tmp;
  const std::string path = tmp / "i.h5";
  {
    auto w = Writer::open(path, make_prov(), make_checkpoints(), make_tasks());
    w->append(batch_with_items(0, 2));
  }
  export_tables(path, tmp / "out", "csv");
  const auto items = lines_of(tmp / "out/items.csv");
  ASSERT_EQ(items.size(), 1u + 2u * (50 + 60 + 70));
  EXPECT_EQ(items[0], "config_id,kind,method,params,n,sample,members,member_names,task,item,acc,acc_norm,acc_bytes,exact_match,"
                      "chosen,gold_loglik");
  const ConfigResult c0 = config_with_items(0);
  const auto& it = c0.items[0];
  char want[64];
  std::snprintf(want, sizeof want, ",task_0,0,%d,%d,%d,%d,%d,%.9g", it.outcome[0] & 1, (it.outcome[0] >> 1) & 1,
                (it.outcome[0] >> 2) & 1, (it.outcome[0] >> 3) & 1, it.chosen[0], static_cast<double>(it.gold_loglik[0]));
  EXPECT_NE(items[1].find(want), std::string::npos) << items[1] << " / " << want;
  const auto docs = lines_of(tmp / "out/item_docs.csv");
  ASSERT_EQ(docs.size(), 1u + 2u * 7);
  EXPECT_EQ(docs[0], "config_id,kind,method,params,n,sample,members,member_names,task,doc,loglik,tokens,words,bytes");
}

// A format-3 archive: the item tables and /fingerprints (version 5) with their commit columns
// removed and format_version 3, through the HDF5 C API.
void downgrade_to_version_3(const std::string& path) {
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  for (const char* t : {"item_runs", "items", "item_docs", "fingerprints"}) {
    EXPECT_GE(H5Ldelete(f, (std::string("/") + t).c_str(), H5P_DEFAULT), 0);
    EXPECT_GE(H5Ldelete(f, (std::string("/commits/") + t).c_str(), H5P_DEFAULT), 0);
  }
  const hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
  const std::int64_t v = 3;
  EXPECT_GE(H5Awrite(a, H5T_NATIVE_INT64, &v), 0);
  H5Aclose(a);
  H5Fclose(f);
}

TEST(ArchiveItems, AVersion3ArchiveIsReadButNotResumed) {
  ms::test::TempDir tmp;
  const std::string path = tmp / "v3.h5";
  {
    auto w = Writer::open(path, make_prov(), make_checkpoints(), make_tasks());
    w->append(make_batch(0, 4));
  }
  downgrade_to_version_3(path);
  const Contents c = read(path);
  EXPECT_EQ(c.attributes.at("format_version"), "3");
  ASSERT_EQ(c.configs.size(), 4u);
  for (const auto& r : c.configs) {
    EXPECT_EQ(check_config(r), "");
    EXPECT_TRUE(r.items.empty());
  }
  EXPECT_TRUE(verify(path).empty()) << join(verify(path));
  export_tables(path, tmp / "out", "csv");
  EXPECT_EQ(lines_of(tmp / "out/items.csv").size(), 1u);
  const std::string e = ms::test::error_of([&] { Writer::open(path, make_prov(), make_checkpoints(), make_tasks()); });
  EXPECT_NE(e.find("format version 3"), std::string::npos) << e;
  EXPECT_NE(e.find("writes version " + std::to_string(kFormatVersion)), std::string::npos) << e;
}

// The systematic study's 16 benchmarks hold about 60k items; with shuffle + deflate a config's
// per-item rows must stay under 400 KB. Measured as the file's growth over 24 configs appended
// one commit each (as a sweep commits), after the first 8 (the file's fixed cost).
TEST(ArchiveItems, SixtyThousandItemsCostUnder400KBPerConfig) {
  // Test-split sizes of the study's 16 benchmarks (rounded), about 60k items in all.
  const std::size_t sizes[16] = {14042, 10042, 5153, 3270, 2376, 1838, 1267, 1172,
                                 1000,  500,   9815, 3000, 2000, 1500, 1200, 1000};
  std::size_t total = 0;
  for (auto s : sizes) total += s;
  ASSERT_GT(total, 59000u);
  ms::test::TempDir tmp;
  const std::string path = tmp / "size.h5";
  const auto config = [&](int i) {
    ConfigResult r = make_config(i);
    r.results.clear();
    std::mt19937_64 rng(static_cast<std::uint64_t>(i));
    for (int t = 0; t < 16; ++t) add_choice_task(r, "benchmark_" + std::to_string(t), sizes[t], rng);
    return r;
  };
  auto w = Writer::open(path, make_prov(), make_checkpoints(), make_tasks());
  for (int i = 0; i < 8; ++i) w->append({config(i)});
  w->close();
  const auto before = std::filesystem::file_size(path);
  w = Writer::open(path, make_prov(), make_checkpoints(), make_tasks());
  for (int i = 8; i < 32; ++i) w->append({config(i)});
  w->close();
  const double per_config = static_cast<double>(std::filesystem::file_size(path) - before) / 24.0;
  std::printf("per-item rows: %zu items per config, %.0f bytes per config (%.2f bytes per item)\n", total, per_config,
              per_config / static_cast<double>(total));
  EXPECT_LT(per_config, 400e3);
  EXPECT_TRUE(verify(path).empty()) << join(verify(path));
}

}  // namespace
}  // namespace ms::archive
