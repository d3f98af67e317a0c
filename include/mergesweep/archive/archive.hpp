// The HDF5 archive of a sweep: one file, one writer (rank 0), chunked extendible datasets
// appended and flushed batch by batch, SWMR so readers (h5py, `mergesweep archive info`) can open
// it while the sweep runs and after a kill. Format in docs/formats.md.
//
// Crash safety: every append ends with one row in /commits that records the row count of every
// table after the batch. Readers trust only rows below the last commit; a writer reopening the
// file appends from the committed counts, overwriting any uncommitted tail. So a kill at any moment loses at most the batch in
// flight, and a config is "done" exactly when its /configs row is committed.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace ms::archive {

// Version 2 added the generation tables, version 3 the failures table, version 4 the per-item
// outcome tables, version 5 the merged models' fingerprints (docs/formats.md). Readers read every version from 1; a writer only appends to
// an archive of its own version.
inline constexpr int kFormatVersion = 5;

struct Provenance {
  std::string spec_text;       // the YAML as given
  std::string spec_hash;       // sha256 hex of spec_text
  std::string plan_hash;       // hash of what determines results (base, checkpoints, eval set)
  std::string version;         // mergesweep version
  std::string git_revision;
  std::string host;
  std::int32_t ranks = 1;
  std::int32_t group_size = 1;
  std::string start_time;      // ISO 8601 UTC
};

struct CheckpointRecord {       // one row per file of the base and of every checkpoint
  std::int32_t model = 0;       // 0 = base, k = checkpoint k (1-based, spec order)
  std::string name;             // model label (folder name)
  std::string path;             // file path as resolved
  std::string sha256;           // hex
  std::uint64_t bytes = 0;
};

struct TaskRecord {             // one row per task pack / probe pack in the eval set
  std::string name;
  std::string kind;             // "task" or "probe"
  std::string path;
  std::string sha256;
  std::int64_t items = 0;
};

struct ConfigRecord {
  std::uint64_t id = 0;         // stable config id
  std::string kind;             // "base", "single", "merge"
  std::string method;           // registry name ("" for base, "none" for single)
  std::string params;           // canonical "name=value,..." of the method parameters (+ density, weight)
  std::int32_t n = 0;           // subset size (0 base, 1 single)
  std::int32_t sample = 0;      // sample index within size n
  std::vector<std::int32_t> members;  // sorted checkpoint numbers (1-based)
};

struct ResultRecord {
  std::uint64_t config_id = 0;
  std::string task;
  std::string metric;
  double value = 0, stderr_ = 0;
  std::int64_t n = 0;           // items scored
};

struct ModelStatRecord {
  std::uint64_t config_id = 0;
  double l2_from_base = 0;
  double cos_mean = 0, cos_min = 0, cos_max = 0;  // pairwise task-vector cosines of the members
  std::map<std::string, double> l2_by_kind;        // columns l2_embed, l2_attn, l2_mlp, ...
};

struct ProbeRecord {
  std::uint64_t config_id = 0;
  std::string probe;
  std::int32_t layer = 0;
  double f1_mean = 0, f1_std = 0;
  std::int32_t seeds = 0;
};

struct TimingRecord {
  std::uint64_t config_id = 0;
  double merge_s = 0, eval_s = 0, probe_s = 0, total_s = 0;
  std::int32_t group = 0;       // worker group that ran it
};

// One greedy generation of a generate_until task (rows of /generations with their ids in
// /generation_tokens and their response bytes in /generation_text).
struct GenerationRecord {
  std::uint64_t config_id = 0;
  std::string task;
  std::int64_t item = 0;               // index in the task pack
  std::string stop;                    // why decoding ended: "until", "stop_token" or "length"
  std::vector<std::int32_t> tokens;    // generated ids
  std::string text;                    // the response as bytes (any bytes: NUL, invalid UTF-8)
};

// Per-item outcomes of one scored task of one config: a multiple_choice task's items (pack order)
// or a loglikelihood_rolling task's documents. The /results rows of the task are sums over them
// (`mergesweep archive verify` checks it). One /item_runs row with its /items or /item_docs rows.
struct ItemOutcomes {
  // Bits of `outcome`: the item counts towards that /results metric.
  static constexpr std::uint8_t kAcc = 1, kAccNorm = 2, kAccBytes = 4, kExactMatch = 8;
  std::uint64_t config_id = 0;
  std::string task;
  std::string kind;                      // "choice" (multiple_choice) or "rolling"
  // choice: one entry per item
  std::vector<std::uint8_t> outcome;     // kAcc | kAccNorm | kAccBytes | kExactMatch bits
  std::vector<std::int32_t> chosen;      // the choice acc picked (argmax of the summed log-likelihoods)
  std::vector<float> gold_loglik;        // summed log-likelihood of the gold choice
  // rolling: one entry per document
  std::vector<double> doc_loglik;        // sum of its windows' log-likelihoods (the metrics' input)
  std::vector<std::int64_t> doc_tokens;  // tokens scored (its windows' continuations)
  std::vector<std::int64_t> doc_words, doc_bytes;  // lm-eval's word and UTF-8 byte counts

  std::size_t size() const { return kind == "rolling" ? doc_loglik.size() : outcome.size(); }
};

// The fingerprint of the model a config evaluated (core/fingerprint.hpp: XXH64 of every tensor's
// bytes in the eval dtype, combined in name order), so that a rebuilt model can be proven to be
// that model (`mergesweep archive model`). Format version 5.
struct FingerprintRecord {
  std::uint64_t config_id = 0;
  std::uint64_t fingerprint = 0;
  std::string dtype;            // the dtype whose bytes were hashed: float32 or bfloat16
};

// A config that failed on a rank of its group (the group agreed on it and went on). The config
// stays out of /configs, so the next run of the same command retries it; its /failures rows stay
// as the history of what went wrong (one per failed attempt).
struct FailureRecord {
  ConfigRecord config;          // what failed, as its /configs row would have been
  std::string failure;          // the kind: error, oom, torch, exception (sweep/failure.hpp)
  std::string message;          // what the failing rank reported (cut to the column's width)
  std::int32_t group = 0;       // worker group that ran it
  std::int32_t session = 0;     // the /specs row of the writer session that recorded it (set by append)
  double time = 0;              // Unix seconds
};

// Everything one config produced; appended as a unit.
struct ConfigResult {
  ConfigRecord config;
  std::vector<ResultRecord> results;
  std::vector<ModelStatRecord> stats;  // 0 or 1
  std::vector<ProbeRecord> probes;
  TimingRecord timing;
  std::vector<GenerationRecord> generations;  // generate_until tasks, in task then item order
  std::vector<ItemOutcomes> items;            // scored tasks, in task order (format version 4)
  std::vector<FingerprintRecord> fingerprints;  // 0 or 1 (format version 5)
};

class Writer {
 public:
  // Creates `path` or reopens an existing archive of the same plan (resume). Refuses, with an
  // error naming the file and the difference, another format version (naming both), a different
  // plan_hash or changed checkpoint hashes, and a file another process has open for writing.
  static std::unique_ptr<Writer> open(const std::string& path, const Provenance& prov,
                                      const std::vector<CheckpointRecord>& checkpoints,
                                      const std::vector<TaskRecord>& tasks);
  ~Writer();  // closes (a clean close clears the open-for-write state)

  const std::set<std::uint64_t>& done() const;  // committed config ids
  // Appends configs not yet done (others are skipped: de-duplication on write) and the failures
  // (their `session` set to this writer's), then commits both together.
  void append(const std::vector<ConfigResult>& batch, const std::vector<FailureRecord>& failures = {});
  void close();

 private:
  Writer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Read side (committed rows only), for `mergesweep archive` and tests.
struct Contents {
  std::map<std::string, std::string> attributes;  // root attributes as strings
  std::vector<CheckpointRecord> checkpoints;
  std::vector<TaskRecord> tasks;
  std::vector<ConfigResult> configs;               // grouped by config, in commit order
  std::vector<FailureRecord> failures;             // in commit order (empty before format version 3)
};
Contents read(const std::string& path);

// Each model's short name (0 = base, k = checkpoint k) from /checkpoints, whose rows are one per
// file: the spec's `name:` or the folder's name, as recorded when the archive was created.
std::map<std::int32_t, std::string> model_names(const std::vector<CheckpointRecord>& files);
// Members by name, joined with commas ("ft-01,ft-04"); a member without a name shows its number.
std::string member_names_text(const std::vector<std::int32_t>& members, const std::map<std::int32_t, std::string>& names);

}  // namespace ms::archive
