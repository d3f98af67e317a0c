// From an archive back to a model: `mergesweep archive model ARCHIVE CONFIG_ID OUT` rebuilds the
// merged model of one config from what the archive recorded (members, method, parameters, seed,
// the spec's vocabulary choice and eval dtype), after checking that every file of the base and the
// members still has the sha256 the sweep recorded. It can also write the mergekit YAML of the same
// merge and a model card. docs/archive.md.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "mergesweep/archive/archive.hpp"
#include "mergesweep/merge/merge_streaming.hpp"

namespace ms::archive {

// A config id as `sweep --plan --list` and `archive top` print it: hex, with or without "0x".
// Throws ms::Error naming `field` for anything else.
std::uint64_t parse_config_id(const std::string& text, const std::string& field);
std::string config_id_hex(std::uint64_t id);  // 16 lower-case hex digits

struct RebuildPlan {
  std::string archive;
  ConfigRecord config;
  std::map<std::string, std::string> attributes;  // the archive's root attributes (plan_hash, ...)
  std::vector<CheckpointRecord> files;            // every file of the base and the members, paths resolved
  std::string base_name;
  std::vector<std::string> member_names;          // /checkpoints name of each member, in member order
  std::vector<ResultRecord> results;              // the archive's scores of this config
  std::vector<ResultRecord> base_results;         // and of the base (for the card's gains)
  std::string eval_dtype = "float32";             // the spec's eval.dtype: the dtype the sweep evaluated in
  std::string vocabulary = "base";                // the spec's vocabulary choice
  std::vector<FingerprintRecord> fingerprint;     // the evaluated model's (none before format version 5)
  // The merge as the sweep ran it: members indexed by their global checkpoint number - 1 (DARE
  // masks depend on it), the vocabulary choice, output in the eval dtype. out_dir and device are
  // the caller's.
  merge::StreamingJob job;
};

// Reads the config's row and what it needs from ARCHIVE. Refuses (ms::Error) an unknown id, a
// base or single config (nothing to merge: the card names the folder), a method this build does
// not know, and parameters that do not hash back to the recorded config id.
RebuildPlan plan_rebuild(const std::string& archive, std::uint64_t config_id);

// sha256 of every file of the base and the members against the archive's. Throws ms::Error
// naming the first file that is missing or whose contents changed.
void check_checkpoints(const RebuildPlan& plan);

// The mergekit YAML (mergekit-yaml, mergekit 0.1.5) of the same merge. Throws ms::Error naming
// the parameter when mergekit has no equivalent (global TIES trim, DARE's 1/density rescale,
// row-wise SLERP, Model Stock's angle mean, methods mergekit lacks).
std::string mergekit_yaml(const RebuildPlan& plan);

// The model fingerprint (core/fingerprint.hpp) of a model folder's tensors as stored: XXH64 of
// each tensor's bytes, combined in name order. Of a folder written in the eval dtype it equals the
// sweep's fingerprint of the same bytes.
std::uint64_t folder_fingerprint(const std::string& dir);

// What a rebuild made, and whether it is provably the model the sweep evaluated.
struct RebuildReport {
  merge::StreamingReport merge;
  std::uint64_t fingerprint = 0;  // of the rebuilt folder
  enum class Verdict { Match, Mismatch, NotRecorded } verdict = Verdict::NotRecorded;
};
// "matches ..." / "DIFFERS ..." / "not recorded ...": the verdict in words, for the card and the CLI.
std::string describe_verdict(const RebuildPlan& plan, const RebuildReport& rep);

// README.md of the rebuilt model: method, members, parameters, the archive's scores with gains
// over the base, plan hash, mergesweep version, the fingerprint verdict. `l2_from_base` < 0 in
// `rep.merge` leaves it out.
std::string model_card(const RebuildPlan& plan, const RebuildReport& rep);

// Checks the checkpoints, merges into a temporary sibling of `out`, fingerprints it against the
// archive's, adds README.md, renames it to `out` (which must not exist). A mismatch is reported,
// not thrown: the folder is kept for inspection and the caller decides the exit status.
RebuildReport rebuild_model(RebuildPlan plan, const std::string& out, c10::Device device,
                            const std::function<void(std::size_t, std::size_t)>& progress = {});

// Metrics where a smaller value is better (perplexities, bits per byte).
bool lower_is_better(const std::string& metric);

// `mergesweep archive top`: configs ranked by one task's metric.
struct TopQuery {
  std::string task;
  std::string metric;       // "" = acc when the task has it, else its first metric
  std::size_t count = 10;
  std::string method;       // "" = every merge method; "none" = single checkpoints
  int size = 0;             // subset size n; 0 = any
};
struct TopRow {
  ConfigRecord config;
  std::vector<std::string> member_names;
  double value = 0, stderr_ = 0;
  double gain = 0;          // over the base, signed so that positive is better
  bool has_base = false;
};
struct TopResult {
  std::string metric;       // the metric ranked by
  double base_value = 0;
  bool has_base = false;
  std::vector<TopRow> rows;  // best first; ties by config id
};
TopResult top_configs(const std::string& archive, const TopQuery& q);

}  // namespace ms::archive
