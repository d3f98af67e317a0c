// Task packs: pre-tokenized multiple-choice requests exactly as lm-eval builds them (HDF5 file,
// format in docs/formats.md). Made by analysis/export_lmeval_task.py or by the testbed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ms::eval {

struct Choice {
  std::vector<std::int32_t> continuation;  // lm-eval's continuation tokens for this choice
  std::int64_t chars = 0;                   // Unicode code points of the choice text (acc_norm)
  std::int64_t bytes = 0;                   // UTF-8 bytes of the choice text (acc_bytes)
};

struct TaskItem {
  std::vector<std::int32_t> context;  // lm-eval's context tokens (shared by every choice)
  std::vector<Choice> choices;
  std::int32_t gold = 0;
};

struct TaskPack {
  std::string name;             // task name as reported in results
  std::string source_task;      // e.g. "arc_easy" or "testbed/arith"
  std::string task_version;
  std::string tokenizer;        // tokenizer name or path the ids belong to
  std::int32_t num_fewshot = 0;
  std::int64_t vocab_size = 0;  // every id must be < this (checked against the model as well)
  std::vector<TaskItem> items;
  std::string path;             // file it was read from
};

// Validates structure and ids; errors name the file, the field and the item.
TaskPack read_task_pack(const std::string& path);
// Writes to a temporary name, then renames.
void write_task_pack(const std::string& path, const TaskPack& pack);

}  // namespace ms::eval
