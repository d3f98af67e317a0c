// Decoder forward throughput on a random Llama-shaped model (no files needed). Baselines measured
// in the same run: the bare projection GEMMs of the same shapes (the irreducible cost; the ratio
// is the forward's overhead), and attention with K/V repeated per query head (what the grouped
// matmul avoids).
// On a GPU it also prints the model FLOPs utilisation: 2 FLOPs per weight per token (lm_head
// included, embedding lookup not) plus causal attention, against MS_PEAK_TFLOPS (default 989: an
// H100/H200's dense bf16 peak).
// Everywhere it prints achieved GFLOP/s (2 FLOPs per weight per token) of the forward and of the
// bare projection GEMMs of the same shapes, same run. Threads as every entry point sets them
// (model/compute_threads.hpp): OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 for one thread.
//   bench_model_forward [B] [T] [layers] [cpu|cuda] [hidden] [intermediate]
//   bench_model_forward --model DIR --ids IDS.safetensors [--device cpu|cuda] [--dtype bfloat16|float32] [--reps R]
// The second form loads a HF model folder (the one bench/gpu/gpu_bench.py times transformers on)
// and runs forward + logits on the int64 [B, T] tensor "input_ids" of IDS: tokens/s, model FLOP/s
// against the same run's bare GEMMs of the model's shapes (lm_head included) and against
// MS_PEAK_TFLOPS on a GPU, and which SDPA kernel the forward's causal attention and eval's
// masked (packed) attention take.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>  // at::NoGradGuard (not via ATen.h in torch 2.x)

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <functional>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "mergesweep/core/gpu_binding.hpp"
#include "mergesweep/io/safetensors_file.hpp"
#include "mergesweep/model/compute_threads.hpp"
#include "mergesweep/model/decoder.hpp"
#include "mergesweep/model/device.hpp"
#include "model/ops.hpp"

namespace {

double seconds_of(const std::function<void()>& fn, int reps) {
  fn();  // warm-up
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
}

// The textbook GQA: repeat each K/V head G times, then [B, H, T, S] attention.
at::Tensor repeated_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask) {
  const std::int64_t G = q.size(1) / k.size(1);
  const at::Tensor kr = k.repeat_interleave(G, 1), vr = v.repeat_interleave(G, 1);
  at::Tensor s = at::matmul(q, kr.transpose(-1, -2)) * (1.0 / std::sqrt(static_cast<double>(q.size(3))));
  s = s + mask;
  const at::Tensor o = at::matmul(at::softmax(s, -1, at::kFloat).to(q.scalar_type()), vr);
  return o.transpose(1, 2).reshape({q.size(0), q.size(2), -1});
}

// A tied-embedding Llama of `hidden` (64-dim heads, 4 query heads per K/V head), 32000 tokens.
ms::io::ModelConfig bench_config(std::int64_t hidden, std::int64_t intermediate, std::int64_t layers) {
  ms::io::ModelConfig c;
  c.model_type = "llama";
  c.hidden_size = hidden;
  c.intermediate_size = intermediate;
  c.num_hidden_layers = layers;
  c.num_attention_heads = c.hidden_size / 64;
  c.num_key_value_heads = std::max<std::int64_t>(1, c.num_attention_heads / 4);
  c.head_dim = 64;
  c.vocab_size = 32000;
  c.max_position_embeddings = 4096;
  c.tie_word_embeddings = true;
  return c;
}

// 2 FLOPs per multiply-add of causal attention over T positions, per token: QKᵀ and PV over T/2
// keys on average.
double attention_flops_per_token(const ms::io::ModelConfig& c, std::int64_t T) {
  return 2.0 * 2.0 * (static_cast<double>(T) / 2.0) *
         static_cast<double>(c.num_attention_heads * c.head_dim * c.num_hidden_layers);
}

// The --model form (see the top of this file). Returns the exit status.
int model_folder_bench(const std::string& folder, const std::string& ids_path, const std::string& device_name,
                       at::ScalarType dtype, int reps) {
  const c10::Device device = ms::model::resolve_device(device_name, ms::node_slot().rank, "", "--device");
  const bool gpu = !device.is_cpu();
  const auto wait = [&](const at::Tensor& t) {
    if (gpu) t.sum().item<double>();
  };
  const auto split = ms::model::configure_compute_threads();
  auto t0 = std::chrono::steady_clock::now();
  const auto model = ms::model::Decoder::load(folder, dtype, device);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const at::Tensor ids = ms::io::SafetensorsFile::open(ids_path)->tensor("input_ids").to(device, at::kLong, false, true);
  const std::int64_t B = ids.size(0), T = ids.size(1);
  const ms::io::ModelConfig& c = model->config();
  at::NoGradGuard no_grad;
  const double fwd = seconds_of([&] { wait(model->logits(model->forward(ids))); }, reps);
  // Baseline: the model's GEMMs alone, each weight against a [B·T, in] input of its width.
  std::map<std::int64_t, at::Tensor> inputs;
  const auto params = model->named_parameters();
  double weights = 0;  // every 2-D weight a token multiplies; a tied embedding counts once, as lm_head
  bool has_head = false;
  for (const auto& [name, w] : params) {
    if (w.dim() != 2) continue;
    has_head = has_head || name.find("lm_head") != std::string::npos;
    if (!inputs.count(w.size(1))) inputs[w.size(1)] = at::randn({B * T, w.size(1)}, w.options());
  }
  // The embedding is a lookup, unless it is tied: then it is the lm_head too.
  const auto multiplies = [&](const std::string& name, const at::Tensor& w) {
    return w.dim() == 2 && (name.find("embed") == std::string::npos || !has_head);
  };
  for (const auto& [name, w] : params)
    if (multiplies(name, w)) weights += static_cast<double>(w.numel());
  const double gemm = seconds_of([&] {
    at::Tensor last;
    for (const auto& [name, w] : params)
      if (multiplies(name, w)) last = at::linear(inputs.at(w.size(1)), w);
    wait(last);
  }, reps);
  const double tokens = static_cast<double>(B * T);
  const double model_flops = (2.0 * weights + attention_flops_per_token(c, T)) * tokens;
  const double gemm_flops = 2.0 * weights * tokens;
  std::printf("bench_model_forward --model on %s, %s, %.1fM weights multiplied per token (load %.1f s), B=%lld T=%lld "
              "(%lld tokens), threads aten %d blas %d\n", device.str().c_str(), c10::toString(dtype), weights / 1e6, load_s,
              (long long)B, (long long)T, (long long)(B * T), split.aten, split.blas);
  std::printf("  forward + logits %.1f ms: %.0f tokens/s, %.1f TFLOP/s\n", fwd * 1e3, tokens / fwd, model_flops / fwd / 1e12);
  std::printf("  the model's GEMMs alone %.1f ms: %.1f TFLOP/s; MFU against them %.1f%%\n", gemm * 1e3,
              gemm_flops / gemm / 1e12, 100.0 * (model_flops / fwd) / (gemm_flops / gemm));
  if (gpu) {
    const char* peak_env = std::getenv("MS_PEAK_TFLOPS");
    const double peak = (peak_env ? std::atof(peak_env) : 989.0) * 1e12;
    std::printf("  MFU against the %.0f TFLOP/s dense bf16 peak: %.1f%%\n", peak / 1e12, 100.0 * model_flops / fwd / peak);
  }
  // The kernels this model's attention takes: the forward's (causal, no mask) and eval's packed
  // scoring (an explicit mask over the same shapes).
  const auto qo = at::TensorOptions().dtype(dtype).device(device);
  const at::Tensor q = at::randn({B, c.num_attention_heads, T, c.head_dim}, qo);
  const at::Tensor k = at::randn({B, c.num_key_value_heads, T, c.head_dim}, qo), v = at::randn_like(k);
  const at::Tensor mask = ms::model::detail::causal_mask(0, T, 0, dtype, device);
  namespace d = ms::model::detail;
  const d::AttentionPath causal = d::attention_path(q, k, mask, true), masked = d::attention_path(q, k, mask, false);
  std::printf("  attention: forward path %s -> SDPA kernel %s; packed scoring path %s -> SDPA kernel %s\n",
              d::attention_path_name(causal), d::sdpa_kernel_name(causal, q, k, v, mask, true).c_str(),
              d::attention_path_name(masked), d::sdpa_kernel_name(masked, q, k, v, mask, false).c_str());
  return 0;
}

// `bench_model_forward --model DIR --ids IDS [--device D] [--dtype T] [--reps R]`.
int model_folder_main(int argc, char** argv) {
  std::string folder, ids, device = "auto", dtype = "bfloat16";
  int reps = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--model") folder = argv[i + 1];
    else if (flag == "--ids") ids = argv[i + 1];
    else if (flag == "--device") device = argv[i + 1];
    else if (flag == "--dtype") dtype = argv[i + 1];
    else if (flag == "--reps") reps = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (folder.empty() || ids.empty() || (dtype != "bfloat16" && dtype != "float32")) {
    std::fprintf(stderr, "usage: bench_model_forward --model DIR --ids IDS.safetensors [--device D] [--dtype bfloat16|float32] [--reps R]\n");
    return 2;
  }
  return model_folder_bench(folder, ids, device, dtype == "bfloat16" ? at::kBFloat16 : at::kFloat, reps);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && !std::strcmp(argv[1], "--model")) return model_folder_main(argc, argv);
  const std::int64_t B = argc > 1 ? std::atoll(argv[1]) : 4;
  const std::int64_t T = argc > 2 ? std::atoll(argv[2]) : 256;
  const std::int64_t layers = argc > 3 ? std::atoll(argv[3]) : 4;
  const c10::Device device = ms::model::resolve_device(argc > 4 ? argv[4] : "cpu", ms::node_slot().rank, "", "device");
  const bool gpu = !device.is_cpu();
  const auto on = [&](const at::Tensor& t) { return t.to(device); };
  const auto wait = [&](const at::Tensor& t) {  // a host read waits for the device's queue
    if (gpu) t.sum().item<double>();
  };
  const auto split = ms::model::configure_compute_threads();
  const ms::io::ModelConfig c = bench_config(argc > 5 ? std::atoll(argv[5]) : 512, argc > 6 ? std::atoll(argv[6]) : 1408, layers);
  at::manual_seed(1);
  std::map<std::string, at::Tensor> store;
  // A getter that makes each tensor it is asked for, random, in the shape its name implies.
  auto make = [&](const std::string& name) -> at::Tensor {
    const std::int64_t C = c.hidden_size, I = c.intermediate_size, D = c.head_dim;
    const std::int64_t H = c.num_attention_heads, KV = c.num_key_value_heads;
    std::vector<std::int64_t> shape;
    if (name.find("embed") != std::string::npos) shape = {c.vocab_size, C};
    else if (name.find("norm") != std::string::npos) shape = {C};
    else if (name.find("q_proj") != std::string::npos) shape = {H * D, C};
    else if (name.find("k_proj") != std::string::npos || name.find("v_proj") != std::string::npos) shape = {KV * D, C};
    else if (name.find("o_proj") != std::string::npos) shape = {C, H * D};
    else if (name.find("down") != std::string::npos) shape = {C, I};
    else shape = {I, C};
    return store[name] = on(at::randn(shape) * 0.05);
  };
  for (auto dtype : {at::kFloat, at::kBFloat16}) {
    store.clear();
    auto model = ms::model::Decoder::create(c, make, dtype, "bench");
    at::NoGradGuard no_grad;
    const at::Tensor ids = on(at::randint(c.vocab_size, {B, T}, at::kLong));
    const double fwd = seconds_of([&] { wait(model->logits(model->forward(ids))); }, 3);
    // Baseline: the same GEMMs, nothing else.
    const at::Tensor x = on(at::randn({B, T, c.hidden_size}).to(dtype));
    const at::Tensor xi = on(at::randn({B, T, c.intermediate_size}).to(dtype));  // down_proj's input
    const auto params = model->named_parameters();
    const double gemm = seconds_of([&] {
      for (const auto& [name, w] : params) {
        if (w.dim() != 2 || name.find("embed") != std::string::npos) continue;
        at::linear(w.size(1) == c.hidden_size ? x : xi, w);  // q/k/v/o/gate/up take C inputs (H·D = C here)
      }
      wait(at::linear(x, params.front().second));  // lm_head (tied)
    }, 3);
    // Attention alone: grouped vs repeated K/V.
    const at::Tensor q = on(at::randn({B, c.num_attention_heads, T, c.head_dim}).to(dtype));
    const at::Tensor k = on(at::randn({B, c.num_key_value_heads, T, c.head_dim}).to(dtype)), v = at::randn_like(k);
    const at::Tensor mask = ms::model::detail::causal_mask(0, T, 0, dtype, device);
    const double grouped =
        seconds_of([&] { wait(ms::model::detail::grouped_attention(q, k, v, mask)); }, 5) * static_cast<double>(layers);
    const double repeated = seconds_of([&] { wait(repeated_attention(q, k, v, mask)); }, 5) * static_cast<double>(layers);
    double weights = 0;  // every 2-D weight a token multiplies (the tied embedding counts once, as lm_head)
    for (const auto& [name, w] : params)
      if (w.dim() == 2) weights += static_cast<double>(w.numel());
    const double tokens = static_cast<double>(B * T);
    std::printf("%-8s threads aten %d blas %d, P %.1fM: forward %.1f GFLOP/s, projection GEMMs alone %.1f GFLOP/s "
                "(forward at %.0f%% of them)\n", c10::toString(dtype), split.aten, split.blas, weights / 1e6,
                2.0 * weights * tokens / fwd / 1e9, 2.0 * weights * tokens / gemm / 1e9, 100.0 * gemm / fwd);
    std::printf("%-8s B=%lld T=%lld layers=%lld: forward+logits %.1f ms (%.0f tok/s); projection GEMMs alone %.1f ms "
                "(forward/gemm %.2f); attention grouped %.1f ms vs repeated K/V %.1f ms (%.2fx)\n",
                c10::toString(dtype), (long long)B, (long long)T, (long long)layers, fwd * 1e3, tokens / fwd, gemm * 1e3,
                fwd / gemm, grouped * 1e3, repeated * 1e3, repeated / grouped);
    if (gpu) {
      const double attn = 2.0 * 2.0 * (static_cast<double>(T) / 2.0) * static_cast<double>(c.num_attention_heads * c.head_dim * layers);  // QKᵀ and PV, causal
      const double flops = (2.0 * weights + attn) * tokens / fwd;
      const char* peak_env = std::getenv("MS_PEAK_TFLOPS");
      const double peak = (peak_env ? std::atof(peak_env) : 989.0) * 1e12;
      std::printf("%-8s on %s: %.1f TFLOP/s, MFU %.1f%% of %.0f TFLOP/s\n", c10::toString(dtype), device.str().c_str(),
                  flops / 1e12, 100.0 * flops / peak, peak / 1e12);
    }
  }
  return 0;
}
