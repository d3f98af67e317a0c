// Whole-archive operations behind `mergesweep archive info|verify|export|merge`.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace ms::archive {

// Per generate_until task: configs with generations, and those of them without a /results row
// for the task yet (their generations await `python3 -m analysis score ARCHIVE`).
struct GenerationTaskStatus {
  std::uint64_t configs = 0;
  std::uint64_t unscored = 0;
};
// The command that scores generations (named wherever unscored configs are reported).
inline constexpr const char* kScoreCommand = "python3 -m analysis score";

struct Summary {
  std::map<std::string, std::string> attributes;             // root attributes as text
  std::vector<std::pair<std::string, std::uint64_t>> rows;   // committed rows per table, format order
  std::map<std::string, std::uint64_t> stored;               // dataset lengths (> rows: uncommitted tail)
  std::int64_t commits = 0;                                  // committed batches (rows of /commits)
  double last_commit_time = 0;                               // Unix seconds
  std::map<std::string, std::map<std::int32_t, std::uint64_t>> configs_by_method_size;  // method -> n -> count
  std::vector<std::pair<std::string, std::string>> sessions; // /specs: (start_time, spec_hash)
  long writer_pid = 0;      // live process holding ARCHIVE.lock, 0 if none
  bool open_flag = false;   // superblock marked open for (SWMR) write: a writer is active or was killed
  std::map<std::string, GenerationTaskStatus> generations;  // task -> status (format version 2)
  std::uint64_t failures = 0;           // /failures rows: failed attempts (format version 3)
  std::uint64_t failed_not_done = 0;    // configs that failed and have no /configs row yet
  std::map<std::int32_t, std::string> models;  // 0 = the base, k = checkpoint k: its name
  std::uint64_t model_files = 0;               // /checkpoints rows: files of those models
};
Summary summarize(const std::string& path);

// Structural and referential checks; returns the problems found (empty: the archive is sound).
// Throws ms::Error when the file cannot be opened as an archive at all.
std::vector<std::string> verify(const std::string& path);

// Tidy tables in `out_dir` (created if needed): results, configs, model_stats, probes, timings,
// generations (text decoded; docs/formats.md), failures, items and item_docs (per-item outcomes),
// checkpoints, tasks. format "csv" or "parquet" (through python3 + pyarrow, error if missing).
// Returns the files written.
std::vector<std::string> export_tables(const std::string& path, const std::string& out_dir, const std::string& format);

// A response's bytes as CSV text: Python's bytes.decode("utf-8", "replace"), NUL as U+FFFD too.
std::string decode_for_csv(const std::string& bytes);

// Combines archives of one plan (same plan_hash and checkpoint hashes) into `out`, each config
// once (first archive wins). `out` must not exist; it is written under a temporary name.
struct MergeReport {
  std::uint64_t configs = 0, duplicates = 0;
};
MergeReport merge_archives(const std::vector<std::string>& inputs, const std::string& out);

}  // namespace ms::archive
