#include "archive/archive_fixture.hpp"

#include <gtest/gtest.h>
#include <hdf5.h>

#include <algorithm>
#include <cmath>

#include "mergesweep/core/hash.hpp"
#include "mergesweep/core/sha256.hpp"

namespace ms::archive::test {

std::uint64_t config_id(int i) { return mix64(static_cast<std::uint64_t>(i)); }

ConfigResult make_config(int i) {
  ConfigResult r;
  auto& c = r.config;
  c.id = config_id(i);
  c.kind = i % 7 == 0 ? "single" : "merge";
  c.method = i % 7 == 0 ? "none" : (i % 2 ? "ties" : "task_arithmetic");
  c.params = i % 7 == 0 ? "{}" : "{\"density\":0.1,\"lambda\":" + std::to_string(i % 5) + ".5}";
  c.n = i % 7 == 0 ? 1 : 2 + i % 3;
  c.sample = i;
  for (int k = 0; k < c.n; ++k) c.members.push_back(1 + (i + k) % 12);
  std::sort(c.members.begin(), c.members.end());
  c.members.erase(std::unique(c.members.begin(), c.members.end()), c.members.end());
  c.n = static_cast<std::int32_t>(c.members.size());
  for (int t = 0; t < kTasks; ++t)
    for (const char* m : {"acc", "acc_norm"})
      r.results.push_back({c.id, "task_" + std::to_string(t), m, 0.001 * i + 0.1 * t + (m[3] ? 0.01 : 0), 0.5 / (i + 1),
                           100 + t});
  if (i % 3 != 0) {
    ModelStatRecord s;
    s.config_id = c.id;
    s.l2_from_base = std::sqrt(static_cast<double>(i));
    s.cos_mean = 0.1;
    s.cos_min = -0.2;
    s.cos_max = 0.3 + i * 1e-6;
    s.l2_by_kind = {{"attn", 1.0 * i}, {"mlp", 2.0 * i}};
    r.stats.push_back(s);
  }
  for (int p = 0; p < kProbes; ++p) r.probes.push_back({c.id, "probe_" + std::to_string(p), p * 2, 0.5 + p, 0.01 * i, 5});
  r.timing = {c.id, 0.1 * i, 0.2, 0.3, 0.6 + 0.1 * i, i % 4};
  for (int k = 0; k < generations_of(i); ++k) {
    GenerationRecord g;
    g.config_id = c.id;
    g.task = "gen_task";
    g.item = k;
    g.stop = k == 0 ? "until" : k == 1 ? "stop_token" : "length";
    for (int t = 0; t < (i + k) % 5; ++t) g.tokens.push_back(1000 * k + t + i);  // (i + k) % 5 == 0: none
    switch (k) {
      case 0: g.text = "ans " + std::to_string(i) + std::string("\0\xff\xfe", 3) + "x"; break;  // NUL, invalid UTF-8
      case 1: g.text = ""; break;                                                       // empty
      case 2: g.text = "caf\xc3\xa9 \xc3"; break;                                    // cut multi-byte sequence
      default: g.text = std::string(300 + i % 50, static_cast<char>('a' + i % 26)); break;
    }
    r.generations.push_back(std::move(g));
  }
  return r;
}

int generations_of(int i) { return i % 3 == 1 ? 0 : i % 5; }

std::vector<ConfigResult> make_batch(int first, int count) {
  std::vector<ConfigResult> b;
  for (int i = first; i < first + count; ++i) b.push_back(make_config(i));
  return b;
}

std::string check_config(const ConfigResult& r) {
  const ConfigResult e = make_config(r.config.sample);
  const auto& a = r.config;
  const auto& b = e.config;
  if (a.id != b.id || a.kind != b.kind || a.method != b.method || a.params != b.params || a.n != b.n ||
      a.members != b.members)
    return "config fields of " + std::to_string(a.sample);
  if (r.results.size() != e.results.size())
    return "config " + std::to_string(a.sample) + " has " + std::to_string(r.results.size()) + " results";
  for (std::size_t k = 0; k < e.results.size(); ++k) {
    const auto &x = r.results[k], &y = e.results[k];
    if (x.config_id != y.config_id || x.task != y.task || x.metric != y.metric || x.value != y.value ||
        x.stderr_ != y.stderr_ || x.n != y.n)
      return "result " + std::to_string(k) + " of config " + std::to_string(a.sample);
  }
  if (r.stats.size() != e.stats.size()) return "stats count of " + std::to_string(a.sample);
  for (std::size_t k = 0; k < e.stats.size(); ++k) {
    const auto &x = r.stats[k], &y = e.stats[k];
    if (x.l2_from_base != y.l2_from_base || x.cos_mean != y.cos_mean || x.cos_min != y.cos_min ||
        x.cos_max != y.cos_max || x.l2_by_kind != y.l2_by_kind)
      return "stats of " + std::to_string(a.sample);
  }
  if (r.probes.size() != e.probes.size()) return "probe count of " + std::to_string(a.sample);
  for (std::size_t k = 0; k < e.probes.size(); ++k) {
    const auto &x = r.probes[k], &y = e.probes[k];
    if (x.probe != y.probe || x.layer != y.layer || x.f1_mean != y.f1_mean || x.f1_std != y.f1_std || x.seeds != y.seeds)
      return "probe of " + std::to_string(a.sample);
  }
  const auto &x = r.timing, &y = e.timing;
  if (x.config_id != y.config_id || x.merge_s != y.merge_s || x.eval_s != y.eval_s || x.probe_s != y.probe_s ||
      x.total_s != y.total_s || x.group != y.group)
    return "timing of " + std::to_string(a.sample);
  if (r.generations.size() != e.generations.size())
    return "config " + std::to_string(a.sample) + " has " + std::to_string(r.generations.size()) + " generations";
  for (std::size_t k = 0; k < e.generations.size(); ++k) {
    const auto &g = r.generations[k], &h = e.generations[k];
    if (g.config_id != h.config_id || g.task != h.task || g.item != h.item || g.stop != h.stop ||
        g.tokens != h.tokens || g.text != h.text)
      return "generation " + std::to_string(k) + " of config " + std::to_string(a.sample);
  }
  return "";
}

Provenance make_prov(const std::string& plan, const std::string& spec) {
  Provenance p;
  p.spec_text = spec;
  p.spec_hash = sha256_hex(spec.data(), spec.size());
  p.plan_hash = plan;
  p.version = "0.1.0";
  p.git_revision = "abc123";
  p.host = "testhost";
  p.ranks = 4;
  p.group_size = 2;
  p.start_time = "2026-11-23T10:00:00Z";
  return p;
}

std::vector<CheckpointRecord> make_checkpoints(const std::string& changed) {
  std::vector<CheckpointRecord> out;
  for (int m = 0; m <= 12; ++m) {
    const std::string name = m == 0 ? "base" : "ft-" + std::to_string(m);
    const std::string seed = name + "/model.safetensors";
    std::string sha = sha256_hex(seed.data(), seed.size());
    if (m == 2 && !changed.empty()) sha = changed;
    out.push_back({m, name, "/data/" + name + "/model.safetensors", sha, 1000u + static_cast<unsigned>(m)});
  }
  return out;
}

std::vector<TaskRecord> make_tasks() {
  std::vector<TaskRecord> out;
  for (int t = 0; t < kTasks; ++t) {
    const std::string name = "task_" + std::to_string(t);
    out.push_back({name, "task", "/data/tasks/" + name + ".h5", sha256_hex(name.data(), name.size()), 50});
  }
  out.push_back({"probe_0", "probe", "/data/probes/p0.h5", std::string(64, 'a'), 40});
  return out;
}

namespace {

void poke(const std::string& path, const char* dataset, hsize_t row, hid_t mem_type, const void* value) {
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  const hid_t d = H5Dopen2(f, dataset, H5P_DEFAULT);
  const hid_t fs = H5Dget_space(d);
  const hsize_t one = 1;
  H5Sselect_hyperslab(fs, H5S_SELECT_SET, &row, nullptr, &one, nullptr);
  const hid_t ms = H5Screate_simple(1, &one, nullptr);
  EXPECT_GE(H5Dwrite(d, mem_type, ms, fs, H5P_DEFAULT, value), 0);
  H5Sclose(ms);
  H5Sclose(fs);
  H5Dclose(d);
  H5Fclose(f);
}

}  // namespace

void poke_u64(const std::string& path, const char* dataset, std::uint64_t row, std::uint64_t value) {
  poke(path, dataset, row, H5T_NATIVE_UINT64, &value);
}

void poke_i64(const std::string& path, const char* dataset, std::uint64_t row, std::int64_t value) {
  poke(path, dataset, row, H5T_NATIVE_INT64, &value);
}

}  // namespace ms::archive::test
