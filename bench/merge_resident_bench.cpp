// Resident-path merge throughput: base and checkpoints in memory on one device, merges per
// second of each method on a subset of size N, against a copy of the bytes one merge must touch
// (N models read, one written) on the same device, measured in the same run. Both layouts run:
// checkpoints in their file dtype (τ formed per tensor, the sweep's) and float32 task vectors
// formed at load (the layout before), and their merges are checked bitwise equal.
//
// usage: bench_merge_resident BASE CK1 CK2 ... [--methods task_arithmetic,ties] [--n N] [--reps R]
//                             [--device cpu|cuda]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>
#include <thread>
#include <vector>

#include "mergesweep/core/gpu_binding.hpp"
#include "mergesweep/merge/resident.hpp"
#include "mergesweep/model/device.hpp"

using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
// Waits for the device's queued work (a host read of a device value does).
void sync(const at::Tensor& t) {
  if (t.defined() && !t.device().is_cpu()) t.sum().item<double>();
}

// Seconds per merge of `r` (after a warm-up that allocates the outputs).
double time_merges(const ms::merge::ResidentModels& models, const ms::merge::MergeRequest& r, int reps,
                   std::map<std::string, at::Tensor>& out) {
  ms::merge::LocalReducer local;
  models.merge(r, out, local);
  sync(out.begin()->second);
  const auto t0 = Clock::now();
  for (int i = 0; i < reps; ++i) models.merge(r, out, local);
  sync(out.begin()->second);
  return seconds_since(t0) / reps;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> paths;
  std::string methods = "task_arithmetic,ties", device_name = "cpu";
  int n = 0, reps = 3;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--methods") && i + 1 < argc) methods = argv[++i];
    else if (!std::strcmp(argv[i], "--n") && i + 1 < argc) n = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--device") && i + 1 < argc) device_name = argv[++i];
    else paths.push_back(argv[i]);
  }
  if (paths.size() < 2) {
    std::fprintf(stderr, "usage: bench_merge_resident BASE CK... [--methods a,b] [--n N] [--reps R] [--device cpu|cuda]\n");
    return 2;
  }
  at::set_num_threads(static_cast<int>(std::thread::hardware_concurrency()));
  const std::vector<std::string> cks(paths.begin() + 1, paths.end());
  if (n <= 0 || n > static_cast<int>(cks.size())) n = static_cast<int>(cks.size());
  ms::merge::ResidentOptions held, old;
  held.device = old.device = ms::model::resolve_device(device_name, ms::node_slot().rank, "", "--device");
  old.residency = ms::merge::Residency::Float32TaskVectors;
  auto t0 = Clock::now();
  const ms::merge::ResidentModels models(paths[0], cks, {}, held);
  const double load_s = seconds_since(t0);
  const ms::merge::ResidentModels f32(paths[0], cks, {}, old);
  std::printf("bench_merge_resident on %s: %zu checkpoints, held in file dtype %.2f GB (loaded in %.1f s), as float32 "
              "task vectors %.2f GB; subset n=%d, %d threads\n",
              held.device.str().c_str(), cks.size(), static_cast<double>(models.resident_bytes()) / 1e9, load_s,
              static_cast<double>(f32.resident_bytes()) / 1e9, n,
              at::get_num_threads());

  // Bytes one merge touches at least: n models and the base read (file dtype), the float32 output written.
  const std::uint64_t model_bytes = models.resident_bytes() / (cks.size() + 1);
  const std::uint64_t touched = model_bytes * (n + 1) + f32.resident_bytes() / (cks.size() + 1);
  const at::Tensor src = at::ones({static_cast<std::int64_t>(touched / 2)}, at::TensorOptions().dtype(at::kBFloat16).device(held.device));
  at::Tensor dst = at::empty_like(src);
  dst.copy_(src);
  sync(dst);
  t0 = Clock::now();
  for (int i = 0; i < reps; ++i) dst.copy_(src);
  sync(dst);
  const double copy_s = seconds_since(t0) / reps;
  std::printf("  copy of the same %.2f GB on the device: %.4f s (%.1f GB/s)\n", static_cast<double>(touched) / 1e9, copy_s,
              static_cast<double>(touched) / 1e9 / copy_s);

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
    std::map<std::string, at::Tensor> a, b;
    const double s = time_merges(models, r, reps, a);
    const double s_old = time_merges(f32, r, reps, b);
    bool same = true;
    for (const auto& [k, v] : a) same = same && v.equal(b.at(k));
    std::printf("  %-20s %8.3f s/merge %7.2f merges/s %6.1f GB/s (copy ratio %.2f) | float32 task vectors: %7.2f merges/s"
                " | bitwise equal: %s\n",
                name.c_str(), s, 1.0 / s, static_cast<double>(touched) / 1e9 / s, copy_s / s, 1.0 / s_old, same ? "yes" : "NO");
    if (!same) return 1;
  }
  return 0;
}
