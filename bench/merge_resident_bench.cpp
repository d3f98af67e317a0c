// Resident-path merge throughput: base + task vectors in memory, merges per second of each method
// on a subset of size N, and a memcpy of the bytes one merge must touch (N task vectors read,
// one model written) measured in the same run.
//
// usage: bench_merge_resident BASE CK1 CK2 ... [--methods task_arithmetic,ties] [--n N] [--reps R]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <thread>
#include <vector>

#include "mergesweep/merge/resident.hpp"

using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  std::vector<std::string> paths;
  std::string methods = "task_arithmetic,ties";
  int n = 0, reps = 3;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--methods") && i + 1 < argc) methods = argv[++i];
    else if (!std::strcmp(argv[i], "--n") && i + 1 < argc) n = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::atoi(argv[++i]);
    else paths.push_back(argv[i]);
  }
  if (paths.size() < 2) {
    std::fprintf(stderr, "usage: bench_merge_resident BASE CK... [--methods a,b] [--n N] [--reps R]\n");
    return 2;
  }
  at::set_num_threads(static_cast<int>(std::thread::hardware_concurrency()));
  const std::vector<std::string> cks(paths.begin() + 1, paths.end());
  if (n <= 0 || n > static_cast<int>(cks.size())) n = static_cast<int>(cks.size());
  auto t0 = Clock::now();
  const ms::merge::ResidentModels models(paths[0], cks);
  const double load_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const double gb = static_cast<double>(models.resident_bytes()) / 1e9;
  std::printf("bench_merge_resident: %zu checkpoints resident (%.2f GB float32, loaded in %.1f s), subset n=%d, %d threads\n",
              cks.size(), gb, load_s, n, at::get_num_threads());

  // Bytes one merge touches at least: n task vectors and the base read, the output written.
  const std::uint64_t model_bytes = models.resident_bytes() / (cks.size() + 1);
  const std::uint64_t touched = model_bytes * (n + 2);
  std::vector<char> src(model_bytes, 1), dst(model_bytes, 0);
  t0 = Clock::now();
  for (int i = 0; i < n + 2; ++i) std::memcpy(dst.data(), src.data(), model_bytes);
  const double memcpy_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const double touched_gb = static_cast<double>(touched) / 1e9;
  std::printf("  memcpy of the same %.2f GB: %.3f s (%.1f GB/s)\n", touched_gb, memcpy_s, touched_gb / memcpy_s);

  ms::merge::LocalReducer local;
  std::map<std::string, at::Tensor> out;
  std::stringstream list(methods);
  for (std::string name; std::getline(list, name, ',');) {
    ms::merge::MergeRequest r;
    r.method = ms::merge::find_method(name);
    if (!r.method) {
      std::fprintf(stderr, "unknown method %s\n", name.c_str());
      return 2;
    }
    r.params = ms::merge::validate_params(r.method->params, {}, "", "");
    for (int i = 0; i < n; ++i) r.members.push_back({"ck", i, 1.0 / n, 0.1});
    models.merge(r, out, local);  // warm-up: output buffers allocated once
    t0 = Clock::now();
    for (int i = 0; i < reps; ++i) models.merge(r, out, local);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count() / reps;
    std::printf("  %-20s %8.3f s/merge  %7.2f merges/s  %6.1f GB/s effective  ratio to memcpy %.2f\n", name.c_str(), s,
                1.0 / s, static_cast<double>(touched) / 1e9 / s, memcpy_s / s);
  }
  return 0;
}
