// Archive append throughput: result rows per second the rank-0 writer sustains with tiny work
// items (each config: R results, 1 model_stats row, P probe rows, 1 timing), batched B configs
// per append (one commit = two H5Fflush). The sweep needs >= 10k result rows/s. Then configs
// carrying generations (format 2): G generations of T tokens and 3T response bytes each.
// usage: bench_archive [DIR] (default $TMPDIR or /tmp)
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "mergesweep/archive/archive.hpp"

using namespace ms::archive;

namespace {

ConfigResult config(std::uint64_t i, int results, int probes) {
  ConfigResult r;
  r.config = {0x9E3779B97F4A7C15ull * (i + 1), "merge", "ties", "{\"density\":0.1,\"lambda\":1.0}", 4,
              static_cast<std::int32_t>(i), {1, 3, 5, 7}};
  for (int t = 0; t < results; ++t)
    r.results.push_back({r.config.id, "task_" + std::to_string(t / 2), t % 2 ? "acc_norm" : "acc", 0.5, 0.01, 500});
  ModelStatRecord s;
  s.config_id = r.config.id;
  s.l2_from_base = 1.5;
  s.l2_by_kind = {{"attn", 1.0}, {"mlp", 1.0}, {"embed", 0.1}};
  r.stats.push_back(s);
  for (int p = 0; p < probes; ++p) r.probes.push_back({r.config.id, "probe_pos", p, 0.8, 0.01, 5});
  r.timing = {r.config.id, 0.01, 0.02, 0.0, 0.03, 0};
  return r;
}

void add_generations(ConfigResult& r, int gens, int tokens) {
  for (int g = 0; g < gens; ++g) {
    GenerationRecord x{r.config.id, "gsm8k", g, "until", {}, std::string(static_cast<std::size_t>(3 * tokens), 'x')};
    for (int t = 0; t < tokens; ++t) x.tokens.push_back(t * 7 + g);
    r.generations.push_back(std::move(x));
  }
}

// Configs with generations: seconds per append and the data rate the writer sustains.
void bench_generations(const std::string& path, const Provenance& prov, const std::vector<CheckpointRecord>& cks,
                       const std::vector<TaskRecord>& tasks) {
  std::printf("\n%-10s %-8s %-8s %-8s %12s %10s %10s %10s\n", "gens/c", "tokens", "batch", "configs", "configs/s",
              "ms/append", "MB/s", "MB");
  std::uint64_t next = 1u << 20;
  for (const auto& [gens, tokens] : std::vector<std::pair<int, int>>{{100, 64}, {1000, 256}}) {
    for (const int batch : {1, 8}) {
      std::filesystem::remove(path);
      auto w = Writer::open(path, prov, cks, tasks);
      const int total = gens >= 1000 ? 16 : 64;
      std::vector<std::vector<ConfigResult>> batches;
      for (int i = 0; i < total; i += batch) {
        batches.emplace_back();
        for (int k = 0; k < batch; ++k) {
          batches.back().push_back(config(next++, 20, 8));
          add_generations(batches.back().back(), gens, tokens);
        }
      }
      const auto t0 = std::chrono::steady_clock::now();
      for (const auto& b : batches) w->append(b);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      w->close();
      const double mb = static_cast<double>(std::filesystem::file_size(path)) / 1e6;
      std::printf("%-10d %-8d %-8d %-8d %12.1f %10.2f %10.1f %10.1f\n", gens, tokens, batch, total,
                  static_cast<double>(total) / s, 1e3 * s / static_cast<double>(batches.size()), mb / s, mb);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const char* t = std::getenv("TMPDIR");
  const std::string dir = argc > 1 ? argv[1] : (t ? t : "/tmp");
  const std::string path = dir + "/bench_archive_" + std::to_string(::getpid()) + ".h5";
  Provenance prov;
  prov.spec_text = "name: bench\n";
  prov.plan_hash = "bench";
  std::vector<CheckpointRecord> cks = {{0, "base", "base/model.safetensors", std::string(64, 'a'), 1}};
  for (int k = 1; k <= 12; ++k) cks.push_back({k, "ft", "ft-" + std::to_string(k) + "/model.safetensors", std::string(64, 'b'), 1});
  std::vector<TaskRecord> tasks = {{"task_0", "task", "t.h5", std::string(64, 'c'), 100}};
  std::printf("%-10s %-8s %-8s %12s %12s %10s %10s\n", "results/c", "batch", "configs", "result rows/s", "configs/s",
              "ms/append", "MB");
  std::uint64_t next = 0;
  for (const int results : {20, 100}) {
    for (const int batch : {1, 16, 64, 256}) {
      std::filesystem::remove(path);
      auto w = Writer::open(path, prov, cks, tasks);
      const std::uint64_t total = batch == 1 ? 500 : 8000;
      std::vector<std::vector<ConfigResult>> batches;
      for (std::uint64_t i = 0; i < total; i += batch) {
        batches.emplace_back();
        for (int k = 0; k < batch; ++k) batches.back().push_back(config(next++, results, 8));
      }
      const auto t0 = std::chrono::steady_clock::now();
      for (const auto& b : batches) w->append(b);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      w->close();
      const double rows = static_cast<double>(batches.size() * batch * results);
      std::printf("%-10d %-8d %-8zu %12.0f %12.0f %10.2f %10.1f\n", results, batch, batches.size() * batch, rows / s,
                  static_cast<double>(batches.size() * batch) / s, 1e3 * s / static_cast<double>(batches.size()),
                  static_cast<double>(std::filesystem::file_size(path)) / 1e6);
    }
  }
  bench_generations(path, prov, cks, tasks);
  std::filesystem::remove(path);
  return 0;
}
