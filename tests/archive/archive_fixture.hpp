// Synthetic sweep records for the archive tests: config i is a pure function of i, so any reader
// (this process, a forked one, an h5py script) can check every committed row it sees.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mergesweep/archive/archive.hpp"

namespace ms::archive::test {

inline constexpr int kTasks = 3;         // results per config: kTasks x 2 metrics
inline constexpr int kProbes = 2;

std::uint64_t config_id(int i);          // spread over the full 64-bit range
ConfigResult make_config(int i);         // config.sample == i
// Generations of config i (task "gen_task", items 0..): 0 to 4, with empty ones, NUL bytes and
// invalid UTF-8 in the text.
int generations_of(int i);
std::vector<ConfigResult> make_batch(int first, int count);
// "" when `r` is exactly make_config(r.config.sample), else what differs.
std::string check_config(const ConfigResult& r);

Provenance make_prov(const std::string& plan = "plan-A", const std::string& spec = "name: demo\n");
std::vector<CheckpointRecord> make_checkpoints(const std::string& changed_sha_of_model2 = "");
std::vector<TaskRecord> make_tasks();

// Rewrites one element of a 1-D column in place (the writer has closed the file), to corrupt an
// archive the way a bug or a disk could.
void poke_u64(const std::string& path, const char* dataset, std::uint64_t row, std::uint64_t value);
void poke_i64(const std::string& path, const char* dataset, std::uint64_t row, std::int64_t value);

}  // namespace ms::archive::test
