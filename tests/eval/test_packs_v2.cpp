// Task pack format 2: per-choice contexts, rolling windows and generation specs round-trip
// through the file, and each malformation of the new fields is refused naming file, field and item.
#include <gtest/gtest.h>

#include <functional>

#include "common/test_util.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/eval/task_pack.hpp"

namespace ms::eval {
namespace {

TaskPack base_pack(OutputType type) {
  TaskPack p;
  p.name = "v2";
  p.source_task = "handmade";
  p.task_version = "2";
  p.tokenizer = "tok";
  p.vocab_size = 64;
  p.output_type = type;
  return p;
}

// Winogrande's form: two contexts per item, one shared continuation.
TaskPack per_choice_pack() {
  TaskPack p = base_pack(OutputType::MultipleChoice);
  for (int i = 0; i < 4; ++i) {
    TaskItem it;
    for (int c = 0; c < 2; ++c) it.choices.push_back(Choice{{40, 41, 42}, 5 + c, 6 + c, {1, 2, 10 + c + i}});
    it.gold = i % 2;
    p.items.push_back(it);
  }
  return p;
}

TaskPack rolling_pack() {
  TaskPack p = base_pack(OutputType::LoglikelihoodRolling);
  p.rolling_max_length = 4;
  const std::int64_t docs_of_window[] = {0, 0, 1, 2, 2, 2};
  for (std::int64_t d : docs_of_window) {
    TaskItem it;
    it.context = {0};
    it.choices.push_back(Choice{{5, 6, 7, 8}, 0, 0, {}});
    it.doc = d;
    p.items.push_back(it);
  }
  p.docs = {{12, 60}, {3, 11}, {20, 99}};
  return p;
}

TaskPack generation_pack() {
  TaskPack p = base_pack(OutputType::GenerateUntil);
  for (int i = 0; i < 3; ++i) {
    TaskItem it;
    it.context = {0, 7, 8, static_cast<std::int32_t>(9 + i)};
    p.items.push_back(it);
  }
  GenerationSpec& g = p.generation;
  g.max_gen_toks = 16;
  g.until = {"\n\n", "Question:", "</s>"};
  g.stop_token_ids = {1};
  for (int t = 0; t < 64; ++t) g.token_bytes.push_back(t < 2 ? std::string() : std::string(1, static_cast<char>(t + 32)));
  g.token_bytes[5] = std::string("\xe2\x82", 2);  // half of a UTF-8 character: bytes, not text
  g.token_bytes[6] = std::string("\0x", 2);
  g.strip_leading_space = true;
  return p;
}

TaskPack round_trip(const TaskPack& p) {
  test::TempDir dir;
  write_task_pack(dir / "p.h5", p);
  return read_task_pack(dir / "p.h5");
}

TEST(TaskPackV2, PerChoiceContextsRoundTrip) {
  const TaskPack p = per_choice_pack();
  const TaskPack q = round_trip(p);
  EXPECT_EQ(q.output_type, OutputType::MultipleChoice);
  EXPECT_TRUE(uses_choice_contexts(q));
  ASSERT_EQ(q.items.size(), p.items.size());
  for (std::size_t i = 0; i < p.items.size(); ++i) {
    EXPECT_TRUE(q.items[i].context.empty());
    EXPECT_EQ(q.items[i].gold, p.items[i].gold);
    for (std::size_t c = 0; c < 2; ++c) {
      EXPECT_EQ(q.items[i].choices[c].context, p.items[i].choices[c].context);
      EXPECT_EQ(q.items[i].choices[c].continuation, p.items[i].choices[c].continuation);
      EXPECT_EQ(q.items[i].choices[c].chars, p.items[i].choices[c].chars);
    }
  }
}

TEST(TaskPackV2, RollingRoundTrip) {
  const TaskPack p = rolling_pack();
  const TaskPack q = round_trip(p);
  EXPECT_EQ(q.output_type, OutputType::LoglikelihoodRolling);
  EXPECT_EQ(q.rolling_max_length, 4);
  ASSERT_EQ(q.docs.size(), 3u);
  EXPECT_EQ(q.docs[2].words, 20);
  EXPECT_EQ(q.docs[2].bytes, 99);
  for (std::size_t i = 0; i < p.items.size(); ++i) EXPECT_EQ(q.items[i].doc, p.items[i].doc);
}

TEST(TaskPackV2, GenerationRoundTripKeepsBytesExactly) {
  const TaskPack p = generation_pack();
  const TaskPack q = round_trip(p);
  EXPECT_EQ(q.output_type, OutputType::GenerateUntil);
  EXPECT_EQ(q.generation.max_gen_toks, 16);
  EXPECT_EQ(q.generation.until, p.generation.until);
  EXPECT_EQ(q.generation.stop_token_ids, p.generation.stop_token_ids);
  EXPECT_EQ(q.generation.token_bytes, p.generation.token_bytes);
  EXPECT_EQ(q.generation.token_bytes[6].size(), 2u);
  EXPECT_TRUE(q.generation.strip_leading_space);
  ASSERT_EQ(q.items.size(), 3u);
  EXPECT_EQ(q.items[2].context, p.items[2].context);
  EXPECT_TRUE(q.items[2].choices.empty());
  EXPECT_TRUE(q.generation.targets.empty());
  EXPECT_FALSE(q.generation.native_exact_match);
}

TEST(TaskPackV2, TargetsAndNativeExactMatchRoundTrip) {
  TaskPack p = generation_pack();
  p.generation.targets = {" a", "", "\xc3\xa9\n"};
  p.generation.native_exact_match = true;
  const TaskPack q = round_trip(p);
  EXPECT_EQ(q.generation.targets, p.generation.targets);
  EXPECT_TRUE(q.generation.native_exact_match);
  TaskPack cut = q;
  limit_task_pack(cut, 2);  // per-item columns follow the items
  EXPECT_EQ(cut.items.size(), 2u);
  EXPECT_EQ(cut.generation.targets.size(), 2u);
}

void expect_write_error(TaskPack p, const std::function<void(TaskPack&)>& corrupt, const std::string& field,
                        const std::string& words) {
  corrupt(p);
  test::TempDir dir;
  try {
    write_task_pack(dir / "bad.h5", p);
    FAIL() << "expected an error mentioning " << words;
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), field) << e.what();
    EXPECT_NE(e.detail().find(words), std::string::npos) << e.what();
  }
  EXPECT_EQ(test::read_file(dir / "bad.h5"), "");
}

TEST(TaskPackV2, MalformedPerChoiceContexts) {
  expect_write_error(per_choice_pack(), [](TaskPack& p) { p.items[1].choices[1].context.clear(); },
                     "choice_context_tokens", "item 1 choice 1: empty context");
  expect_write_error(per_choice_pack(), [](TaskPack& p) { p.items[2].context = {3}; }, "context_tokens",
                     "item 2: has a shared context");
  expect_write_error(per_choice_pack(), [](TaskPack& p) { p.items[0].choices[0].context[0] = 64; },
                     "choice_context_tokens", "item 0 choice 0: token id 64");
}

TEST(TaskPackV2, MalformedRolling) {
  expect_write_error(rolling_pack(), [](TaskPack& p) { p.rolling_max_length = 0; }, "attribute max_length", "must be > 0");
  expect_write_error(rolling_pack(), [](TaskPack& p) { p.items[3].doc = 0; }, "item_doc", "item 3: document 0");
  expect_write_error(rolling_pack(), [](TaskPack& p) { p.docs.push_back({1, 1}); }, "item_doc", "document 3 has no window");
  expect_write_error(rolling_pack(), [](TaskPack& p) { p.items[0].choices.push_back(p.items[0].choices[0]); },
                     "choice_offsets", "item 0: a rolling window has exactly one choice");
}

TEST(TaskPackV2, MalformedGeneration) {
  expect_write_error(generation_pack(), [](TaskPack& p) { p.generation.max_gen_toks = 0; }, "attribute max_gen_toks",
                     "must be > 0");
  expect_write_error(generation_pack(), [](TaskPack& p) { p.generation.until.push_back(""); }, "until",
                     "stop string 3 is empty");
  expect_write_error(generation_pack(), [](TaskPack& p) { p.generation.token_bytes.pop_back(); }, "token_bytes_offsets",
                     "does not cover the vocabulary");
  expect_write_error(generation_pack(), [](TaskPack& p) { p.generation.stop_token_ids = {64}; }, "stop_token_ids",
                     "token id 64");
  expect_write_error(generation_pack(), [](TaskPack& p) { p.generation.native_exact_match = true; },
                     "attribute native_metric", "needs a target per item");
  expect_write_error(generation_pack(), [](TaskPack& p) { p.generation.targets = {"x"}; }, "target",
                     "expected one per item (3)");
  expect_write_error(generation_pack(), [](TaskPack& p) { p.items[1].context.clear(); }, "context_tokens",
                     "item 1: empty prompt");
  expect_write_error(generation_pack(), [](TaskPack& p) { p.items[0].choices.push_back(Choice{{3}, 1, 1, {}}); },
                     "choice_offsets", "item 0: a generate_until item has no choices");
}

}  // namespace
}  // namespace ms::eval
