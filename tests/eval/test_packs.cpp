// Task and probe pack files: round trip, and each malformation rejected with an error that names
// the file, the field and the item.
#include <gtest/gtest.h>

#include <functional>
#include <map>

#include "common/test_util.hpp"
#include "h5/h5.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/eval/probes.hpp"
#include "mergesweep/eval/task_pack.hpp"

namespace ms::eval {
namespace {

TaskPack sample_task_pack() {
  TaskPack p;
  p.name = "sample";
  p.source_task = "testbed/sample";
  p.task_version = "1.0";
  p.tokenizer = "tok-ü";
  p.num_fewshot = 3;
  p.vocab_size = 100;
  for (int i = 0; i < 5; ++i) {
    TaskItem it;
    for (int t = 0; t <= i; ++t) it.context.push_back(10 + t + i);
    for (int c = 0; c < 2 + i % 3; ++c) {
      Choice ch;
      for (int t = 0; t <= c; ++t) ch.continuation.push_back(50 + c + t);
      ch.chars = 3 + c;
      ch.bytes = 4 + c;
      it.choices.push_back(ch);
    }
    it.gold = i % 2;
    p.items.push_back(it);
  }
  return p;
}

TEST(TaskPackFile, RoundTrip) {
  test::TempDir dir;
  const TaskPack p = sample_task_pack();
  write_task_pack(dir / "t.h5", p);
  const TaskPack q = read_task_pack(dir / "t.h5");
  EXPECT_EQ(q.path, dir / "t.h5");
  EXPECT_EQ(q.name, p.name);
  EXPECT_EQ(q.source_task, p.source_task);
  EXPECT_EQ(q.task_version, p.task_version);
  EXPECT_EQ(q.tokenizer, p.tokenizer);
  EXPECT_EQ(q.num_fewshot, p.num_fewshot);
  EXPECT_EQ(q.vocab_size, p.vocab_size);
  ASSERT_EQ(q.items.size(), p.items.size());
  for (std::size_t i = 0; i < p.items.size(); ++i) {
    EXPECT_EQ(q.items[i].context, p.items[i].context);
    EXPECT_EQ(q.items[i].gold, p.items[i].gold);
    ASSERT_EQ(q.items[i].choices.size(), p.items[i].choices.size());
    for (std::size_t c = 0; c < p.items[i].choices.size(); ++c) {
      EXPECT_EQ(q.items[i].choices[c].continuation, p.items[i].choices[c].continuation);
      EXPECT_EQ(q.items[i].choices[c].chars, p.items[i].choices[c].chars);
      EXPECT_EQ(q.items[i].choices[c].bytes, p.items[i].choices[c].bytes);
    }
  }
}

TEST(TaskPackFile, LargePackRoundTripsThroughChunkedDatasets) {
  test::TempDir dir;
  TaskPack p = sample_task_pack();
  p.vocab_size = 70000;
  p.items[0].context.resize(20000);
  for (std::size_t t = 0; t < p.items[0].context.size(); ++t) p.items[0].context[t] = static_cast<int>(t * 7 % 70000);
  write_task_pack(dir / "t.h5", p);
  EXPECT_EQ(read_task_pack(dir / "t.h5").items[0].context, p.items[0].context);
}

TEST(TaskPackFile, WriteRejectsInvalidPackAndLeavesNothing) {
  test::TempDir dir;
  TaskPack p = sample_task_pack();
  p.items[2].choices.clear();
  try {
    write_task_pack(dir / "t.h5", p);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("item 2: empty choices"), std::string::npos) << e.what();
  }
  EXPECT_EQ(test::read_file(dir / "t.h5"), "");
}

// The flat datasets of sample_task_pack(), which a test then corrupts before writing them raw.
struct RawTaskPack {
  std::map<std::string, std::string> sattr;
  std::map<std::string, std::int64_t> iattr;
  std::map<std::string, std::vector<std::int64_t>> i64;
  std::map<std::string, std::vector<std::int32_t>> i32;

  RawTaskPack() {
    const TaskPack p = sample_task_pack();
    sattr = {{"format", "mergesweep-task-pack"}, {"name", p.name}, {"source_task", p.source_task},
             {"task_version", p.task_version}, {"tokenizer", p.tokenizer}};
    iattr = {{"format_version", 1}, {"num_fewshot", p.num_fewshot}, {"vocab_size", p.vocab_size}};
    auto& ctx_off = i64["context_offsets"] = {0};
    auto& ch_off = i64["choice_offsets"] = {0};
    auto& cont_off = i64["continuation_offsets"] = {0};
    for (const auto& it : p.items) {
      i32["gold"].push_back(it.gold);
      for (int t : it.context) i32["context_tokens"].push_back(t);
      ctx_off.push_back(static_cast<std::int64_t>(i32["context_tokens"].size()));
      for (const auto& ch : it.choices) {
        for (int t : ch.continuation) i32["continuation_tokens"].push_back(t);
        cont_off.push_back(static_cast<std::int64_t>(i32["continuation_tokens"].size()));
        i64["choice_chars"].push_back(ch.chars);
        i64["choice_bytes"].push_back(ch.bytes);
      }
      ch_off.push_back(static_cast<std::int64_t>(i64["choice_chars"].size()));
    }
  }
  void write(const std::string& path) const {
    h5::Handle f = h5::create_truncate(path, path);
    for (const auto& [k, v] : sattr) h5::write_string_attr(f, k, v, path);
    for (const auto& [k, v] : iattr) h5::write_int_attr(f, k, v, path);
    for (const auto& [k, v] : i64) h5::write_i64(f, k, v, path);
    for (const auto& [k, v] : i32) h5::write_i32(f, k, v, path);
  }
};

void expect_read_error(const std::function<void(RawTaskPack&)>& corrupt, const std::string& field,
                       const std::string& words) {
  test::TempDir dir;
  RawTaskPack raw;
  corrupt(raw);
  raw.write(dir / "bad.h5");
  try {
    read_task_pack(dir / "bad.h5");
    FAIL() << "expected an error mentioning " << words;
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), dir / "bad.h5");
    EXPECT_EQ(e.field(), field) << e.what();
    EXPECT_NE(e.detail().find(words), std::string::npos) << e.what();
  }
}

TEST(TaskPackFile, UnmodifiedRawPackReads) {
  test::TempDir dir;
  RawTaskPack().write(dir / "ok.h5");
  EXPECT_EQ(read_task_pack(dir / "ok.h5").items.size(), 5u);
}

TEST(TaskPackFile, ValidationErrorsNameFieldAndItem) {
  // Item 1 has 3 choices (indices 2..4); make its choice list empty by moving offsets.
  expect_read_error([](RawTaskPack& r) { r.i64["choice_offsets"][2] = r.i64["choice_offsets"][1]; },
                    "choice_offsets", "item 1: empty choices");
  expect_read_error([](RawTaskPack& r) { r.i64["continuation_offsets"][3] = 0; }, "continuation_offsets",
                    "choice 2: offsets decrease");
  // Choice 2 (item 1 choice 0) loses its one token to choice 3.
  expect_read_error([](RawTaskPack& r) { r.i64["continuation_offsets"][3] = r.i64["continuation_offsets"][2]; },
                    "continuation_tokens", "item 1 choice 0: empty continuation");
  expect_read_error([](RawTaskPack& r) { r.i32["context_tokens"][4] = 100; }, "context_tokens",
                    "item 2: token id 100 at position 1 is outside the vocabulary [0, 100)");
  expect_read_error([](RawTaskPack& r) { r.i32["continuation_tokens"][0] = -1; }, "continuation_tokens",
                    "item 0 choice 0: token id -1");
  expect_read_error([](RawTaskPack& r) { r.i32["gold"][3] = 2; }, "gold", "item 3: gold 2 is not a choice index in [0, 2)");
  expect_read_error([](RawTaskPack& r) { r.i64["context_offsets"].back() += 1; }, "context_offsets", "past the end");
  expect_read_error([](RawTaskPack& r) { r.i64["context_offsets"].pop_back(); }, "context_offsets", "expected 6");
  expect_read_error([](RawTaskPack& r) { r.i64["choice_bytes"].pop_back(); }, "choice_bytes", "one per choice");
  expect_read_error([](RawTaskPack& r) { r.i64.erase("choice_chars"); }, "choice_chars", "missing dataset");
  expect_read_error([](RawTaskPack& r) { r.sattr.erase("tokenizer"); }, "attribute tokenizer", "missing");
  expect_read_error([](RawTaskPack& r) { r.iattr["format_version"] = 7; }, "attribute format_version",
                    "unsupported version 7");
  expect_read_error([](RawTaskPack& r) { r.sattr["format"] = "other"; }, "attribute format", "expected");
  expect_read_error([](RawTaskPack& r) { r.iattr["vocab_size"] = 0; }, "attribute vocab_size", "must be in");
  expect_read_error(
      [](RawTaskPack& r) {
        r.i64["context_offsets"][1] = 0;  // item 0's only context token moves to item 1
      },
      "context_tokens", "item 0: empty context");
}

TEST(TaskPackFile, EmptyContinuationIsNamed) {
  test::TempDir dir;
  TaskPack p = sample_task_pack();
  p.items[4].choices[1].continuation.clear();
  try {
    write_task_pack(dir / "t.h5", p);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), "continuation_tokens");
    EXPECT_NE(e.detail().find("item 4 choice 1: empty continuation"), std::string::npos) << e.what();
  }
}

TEST(TaskPackFile, MissingAndNonHdf5Files) {
  test::TempDir dir;
  try {
    read_task_pack(dir / "nope.h5");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no such file"), std::string::npos);
  }
  {
    FILE* f = std::fopen((dir / "junk.h5").c_str(), "w");
    std::fputs("not hdf5 at all", f);
    std::fclose(f);
  }
  try {
    read_task_pack(dir / "junk.h5");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not an HDF5 file"), std::string::npos);
  }
}

ProbePack sample_probe_pack() {
  ProbePack p;
  p.name = "probe";
  p.tokenizer = "tok";
  p.vocab_size = 40;
  p.label_names = {"neg", "pos", "naïve"};
  for (int i = 0; i < 9; ++i) {
    std::vector<std::int32_t> s;
    for (int t = 0; t < 1 + i % 4; ++t) s.push_back((i * 5 + t) % 40);
    p.sentences.push_back(s);
    p.labels.push_back(i % 3);
    p.split.push_back(static_cast<Split>(i % 3));
  }
  return p;
}

TEST(ProbePackFile, RoundTrip) {
  test::TempDir dir;
  const ProbePack p = sample_probe_pack();
  write_probe_pack(dir / "p.h5", p);
  const ProbePack q = read_probe_pack(dir / "p.h5");
  EXPECT_EQ(q.name, p.name);
  EXPECT_EQ(q.tokenizer, p.tokenizer);
  EXPECT_EQ(q.vocab_size, p.vocab_size);
  EXPECT_EQ(q.sentences, p.sentences);
  EXPECT_EQ(q.labels, p.labels);
  EXPECT_EQ(q.split, p.split);
  EXPECT_EQ(q.label_names, p.label_names);
}

TEST(ProbePackFile, ValidationErrors) {
  test::TempDir dir;
  auto expect = [&](const std::function<void(ProbePack&)>& corrupt, const std::string& field, const std::string& words) {
    ProbePack p = sample_probe_pack();
    corrupt(p);
    try {
      write_probe_pack(dir / "p.h5", p);
      FAIL() << words;
    } catch (const Error& e) {
      EXPECT_EQ(e.field(), field) << e.what();
      EXPECT_NE(e.detail().find(words), std::string::npos) << e.what();
    }
  };
  expect([](ProbePack& p) { p.labels[4] = 3; }, "labels", "sentence 4: label 3 is not a class index in [0, 3)");
  expect([](ProbePack& p) { p.sentences[2][0] = 40; }, "tokens", "sentence 2: token id 40");
  expect([](ProbePack& p) { p.sentences[5].clear(); }, "offsets", "sentence 5: empty sentence");
  expect([](ProbePack& p) { p.split[7] = static_cast<Split>(3); }, "split", "sentence 7: value 3");
  expect([](ProbePack& p) { for (auto& s : p.split) if (s == Split::kDev) s = Split::kTrain; }, "split", "no dev");
  expect([](ProbePack& p) { p.label_names = {"one"}; }, "label_names", "at least 2 classes");
}

TEST(ProbePackFile, ReadRejectsBadSplitValue) {
  test::TempDir dir;
  write_probe_pack(dir / "p.h5", sample_probe_pack());
  {
    h5::Handle f(H5Fopen((dir / "p.h5").c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
    h5::Handle d(H5Dopen2(f.get(), "split", H5P_DEFAULT), H5Dclose);
    std::vector<std::uint8_t> v(9, 0);
    v[6] = 9;
    ASSERT_GE(H5Dwrite(d.get(), H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), 0);
  }
  try {
    read_probe_pack(dir / "p.h5");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), "split");
    EXPECT_NE(e.detail().find("sentence 6: value 9"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ms::eval
