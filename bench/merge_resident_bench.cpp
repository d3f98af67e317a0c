// Resident-path merge throughput: base and checkpoints in memory on one device, merges per
// second of each method on a subset of size N, against a copy of the bytes one merge must touch
// (N models read, one written) on the same device, measured in the same run. Both layouts run:
// checkpoints in their file dtype (τ formed per tensor, the sweep's) and float32 task vectors
// formed at load (the layout before), and their merges are checked bitwise equal.
//
// usage: bench_merge_resident BASE CK1 CK2 ... [--methods task_arithmetic,ties] [--n N] [--reps R]
//                             [--device cpu|cuda]
//
// --synthetic 8b|toy: no files. The base and K checkpoints (--checkpoints, default 12) are random
// bfloat16 made on the device in Llama-3.1-8B decoder-layer shapes (toy: the same layout, hidden
// 256), --layers of them (default on a GPU: as many as fit in 60% of its memory, at most 4; else 2).
// Each method merges all K through the device path (the generic ATen kernels a GPU runs, also on
// the CPU here), the merged tensors going to a sink that keeps nothing (the sweep's sink casts
// them into the gather buffer, not timed here). Baseline, same run: a device-to-device copy of the
// same tensors (base and K checkpoints, each into a scratch buffer). Both as bandwidth, bytes read
// plus bytes written per second; the merge reads K+1 bf16 models and writes float32.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include "mergesweep/core/gpu_binding.hpp"
#include "mergesweep/merge/resident.hpp"
#include "mergesweep/model/device.hpp"

using Clock = std::chrono::steady_clock;

namespace {

// The request every timing here merges: method `name` with its defaults over checkpoints 0..n-1,
// equal weights, density 0.1 (TIES, DARE). Unknown methods are reported and give nothing.
std::optional<ms::merge::MergeRequest> bench_request(const std::string& name, int n) {
  ms::merge::MergeRequest r;
  r.method = ms::merge::find_method(name);
  if (!r.method) {
    std::fprintf(stderr, "unknown method %s\n", name.c_str());
    return std::nullopt;
  }
  r.params = ms::merge::validate_params(r.method->params, {}, "", "");
  for (int i = 0; i < n; ++i) r.members.push_back({"ck", i, 1.0 / n, 0.1});
  return r;
}


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

// Seconds of the first merge (it allocates the workspace and makes TIES's trim rules, once per
// sweep) and per merge after it, each merged tensor handed to a sink that keeps nothing.
std::pair<double, double> time_merges_to_nowhere(const ms::merge::ResidentModels& models, const ms::merge::MergeRequest& r,
                                                 int reps) {
  ms::merge::LocalReducer local;
  at::Tensor last;
  const auto merge_once = [&] {
    models.merge_each(r, local, [&](const std::string&, const at::Tensor& merged) { last = merged; });
    sync(last);
  };
  auto t0 = Clock::now();
  merge_once();
  const double first_s = seconds_since(t0);
  t0 = Clock::now();
  for (int i = 0; i < reps; ++i) merge_once();
  return {first_s, seconds_since(t0) / reps};
}

struct Layout {  // one decoder layer's tensors by HF name suffix
  std::int64_t hidden, intermediate, kv_dim;
};

// The 2-D projections and norms of `layers` Llama decoder layers: name -> shape.
std::map<std::string, std::vector<std::int64_t>> layer_shapes(const Layout& l, int layers) {
  std::map<std::string, std::vector<std::int64_t>> out;
  for (int i = 0; i < layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    out[p + "self_attn.q_proj.weight"] = {l.hidden, l.hidden};
    out[p + "self_attn.k_proj.weight"] = {l.kv_dim, l.hidden};
    out[p + "self_attn.v_proj.weight"] = {l.kv_dim, l.hidden};
    out[p + "self_attn.o_proj.weight"] = {l.hidden, l.hidden};
    out[p + "mlp.gate_proj.weight"] = {l.intermediate, l.hidden};
    out[p + "mlp.up_proj.weight"] = {l.intermediate, l.hidden};
    out[p + "mlp.down_proj.weight"] = {l.hidden, l.intermediate};
    out[p + "input_layernorm.weight"] = {l.hidden};
    out[p + "post_attention_layernorm.weight"] = {l.hidden};
  }
  return out;
}

std::uint64_t layer_bytes_bf16(const Layout& l) {
  const std::uint64_t h = l.hidden, i = l.intermediate, kv = l.kv_dim;
  return 2 * (2 * h * h + 2 * kv * h + 3 * i * h + 2 * h);
}

// Times each method over all K checkpoints of random bf16 models made on `device`, against a
// copy of the same tensors on the device. Returns the exit status.
int synthetic_bench(const std::string& shape, int layers, int checkpoints, const std::string& methods, int reps,
                    c10::Device device) {
  const Layout l = shape == "8b" ? Layout{4096, 14336, 1024} : Layout{256, 896, 64};
  if (shape != "8b" && shape != "toy") {
    std::fprintf(stderr, "--synthetic takes 8b or toy\n");
    return 2;
  }
  if (layers <= 0) {
    const std::uint64_t fit = ms::model::device_memory_bytes(device) * 6 / 10 / ((checkpoints + 1) * layer_bytes_bf16(l));
    layers = device.is_cpu() ? 2 : static_cast<int>(std::max<std::uint64_t>(1, std::min<std::uint64_t>(4, fit)));
  }
  const auto opts = at::TensorOptions().device(device);
  at::manual_seed(7);
  auto t0 = Clock::now();
  std::map<std::string, at::Tensor> base;
  std::vector<std::map<std::string, at::Tensor>> cks(checkpoints);
  std::int64_t largest = 0;
  for (const auto& [name, sizes] : layer_shapes(l, layers)) {
    const at::Tensor b32 = at::randn(sizes, opts.dtype(at::kFloat)) * 0.02;
    base[name] = b32.to(at::kBFloat16);
    for (auto& ck : cks) ck[name] = (b32 + at::randn(sizes, opts.dtype(at::kFloat)) * 0.002).to(at::kBFloat16);
    largest = std::max<std::int64_t>(largest, b32.numel());
  }
  ms::merge::ResidentOptions held;
  held.device = device;
  held.cpu_fast_paths = false;  // the device path on every device: what a GPU runs
  const std::vector<std::map<std::string, at::Tensor>> same_bytes = cks;  // shares their storage
  const ms::merge::ResidentModels models(std::move(base), std::move(cks), held);
  sync(models.held_base(models.tensor_names().front()));
  const double make_s = seconds_since(t0);
  const std::uint64_t model_bytes = models.resident_bytes() / (checkpoints + 1);
  std::uint64_t out_bytes = 0;  // the merge writes each tensor once, in float32
  for (const auto& name : models.tensor_names()) out_bytes += 4 * static_cast<std::uint64_t>(models.held_base(name).numel());
  std::printf("bench_merge_resident --synthetic %s on %s: %d decoder layers, base + %d checkpoints of %.4f GB each "
              "(bf16, made on the device in %.1f s), %d threads\n",
              shape.c_str(), device.str().c_str(), layers, checkpoints, static_cast<double>(model_bytes) / 1e9, make_s,
              at::get_num_threads());

  // Baseline: every resident tensor of the base and the K checkpoints copied on the device.
  at::Tensor scratch = at::empty({largest}, opts.dtype(at::kBFloat16));
  const auto copy_all = [&] {
    for (const auto& name : models.tensor_names()) {
      const at::Tensor& b = models.held_base(name);
      scratch.narrow(0, 0, b.numel()).view(b.sizes()).copy_(b);
    }
    for (const auto& ck : same_bytes)
      for (const auto& [name, t] : ck) scratch.narrow(0, 0, t.numel()).view(t.sizes()).copy_(t);
    sync(scratch);
  };
  copy_all();
  t0 = Clock::now();
  for (int i = 0; i < reps; ++i) copy_all();
  const double copy_s = seconds_since(t0) / reps;
  const double copy_gbs = 2.0 * static_cast<double>(model_bytes) * (checkpoints + 1) / 1e9 / copy_s;
  std::printf("  copy of the same %.3f GB (base + %d checkpoints) on the device: %.4f s, %.2f GB/s (read + written)\n",
              static_cast<double>(model_bytes) * (checkpoints + 1) / 1e9, checkpoints, copy_s, copy_gbs);

  std::stringstream list(methods);
  for (std::string name; std::getline(list, name, ',');) {
    std::optional<ms::merge::MergeRequest> req = bench_request(name, checkpoints);
    if (!req) return 2;
    const ms::merge::MergeRequest& r = *req;
    const auto [first_s, s] = time_merges_to_nowhere(models, r, reps);
    const double gbs = (static_cast<double>(model_bytes) * (checkpoints + 1) + static_cast<double>(out_bytes)) / 1e9 / s;
    std::printf("  %-16s n=%d: %8.4f s/merge, %8.2f GB/s (read + written) = %5.1f%% of the copy's; first merge %.3f s\n",
                name.c_str(), checkpoints, s, gbs, 100.0 * gbs / copy_gbs, first_s);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> paths;
  std::string methods = "task_arithmetic,ties", device_name = "cpu", synthetic;
  int n = 0, reps = 3, layers = 0, checkpoints = 12;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--methods") && i + 1 < argc) methods = argv[++i];
    else if (!std::strcmp(argv[i], "--synthetic") && i + 1 < argc) synthetic = argv[++i];
    else if (!std::strcmp(argv[i], "--layers") && i + 1 < argc) layers = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--checkpoints") && i + 1 < argc) checkpoints = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--n") && i + 1 < argc) n = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--device") && i + 1 < argc) device_name = argv[++i];
    else paths.push_back(argv[i]);
  }
  if (!synthetic.empty()) {
    at::set_num_threads(static_cast<int>(std::thread::hardware_concurrency()));
    return synthetic_bench(synthetic, layers, checkpoints, methods, reps,
                           ms::model::resolve_device(device_name, ms::node_slot().rank, "", "--device"));
  }
  if (paths.size() < 2) {
    std::fprintf(stderr, "usage: bench_merge_resident BASE CK... [--methods a,b] [--n N] [--reps R] [--device cpu|cuda]\n"
                         "       bench_merge_resident --synthetic 8b|toy [--layers L] [--checkpoints K] [--methods a,b] "
                         "[--reps R] [--device cpu|cuda]\n");
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
    std::optional<ms::merge::MergeRequest> req = bench_request(name, n);
    if (!req) return 2;
    const ms::merge::MergeRequest& r = *req;
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
