// The memory plan (sweep --plan, and the refusal before a sweep starts) and the device-generic
// twins of the worker's chunked sums.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "common/test_util.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/io/fs_util.hpp"
#include "mergesweep/io/hf_config.hpp"
#include "mergesweep/io/hf_model.hpp"
#include "mergesweep/model/arch_table.hpp"
#include "mergesweep/sweep/memory_plan.hpp"
#include "mergesweep/sweep/worker.hpp"

namespace ms::sweep {
namespace {

const char* kSpec = R"(name: t
base: m/base
checkpoints: [m/a, m/b, m/c, m/d]
subsets: {sizes: [2, 3], samples: 2, seed: 7}
methods:
  - {method: task_arithmetic}
eval: {dtype: bfloat16, batch_tokens: 64, max_length: 32}
output: out.h5
schedule: {device: cpu, memory_per_rank: 1MB}
)";

// Four 1000-value bf16 tensors and one 4000-value one: 2 bytes per value.
ModelShape shape() {
  ModelShape m;
  m.names = {"a", "b", "c", "d", "embed"};
  m.numel = {1000, 1000, 1000, 1000, 4000};
  for (auto n : m.numel) m.bytes.push_back(static_cast<std::uint64_t>(n) * 2);
  m.hidden = 8, m.intermediate = 16, m.vocab = 10, m.heads = 2, m.max_position = 128;
  return m;
}

// An 8B-like rank (Llama-3.1-8B's embedding and MLP projection) with the studies' whole-tensor
// methods at n = 12: the workspace W (the embedding's size, through which baselines and row-block
// passes go) plus the most one tensor holds beside it. Nothing holds (n + 3) float32 copies of
// the embedding.
TEST(MemoryPlan, WorkspaceFollowsEachTensorsPass) {
  const auto spec_with = [](const std::string& methods) {
    std::string text = "name: t\nbase: m/base\ncheckpoints: [";
    for (int i = 0; i < 12; ++i) text += (i ? ", m/" : "m/") + std::to_string(i);
    text += "]\nsubsets: {sizes: [12], samples: 1, seed: 7}\nmethods:\n" + methods +
            "output: out.h5\nschedule: {memory_per_rank: 1TB}\n";
    return parse_spec(text, "spec.yaml");
  };
  ModelShape m;
  m.names = {"model.embed_tokens.weight", "model.layers.0.mlp.up_proj.weight"};
  m.shapes = {{128256, 4096}, {14336, 4096}};
  for (const auto& s : m.shapes) m.numel.push_back(s[0] * s[1]), m.bytes.push_back(static_cast<std::uint64_t>(s[0] * s[1]) * 2);
  m.hidden = 4096, m.intermediate = 14336, m.vocab = 128256, m.heads = 32, m.max_position = 8192;
  const std::uint64_t E = 128256ull * 4096ull, M = 14336ull * 4096ull, block = 256ull * 4096ull;
  const std::uint64_t k = 52'533'658ull;  // ceil(0.1 E)
  const c10::Device cuda(c10::DeviceType::CUDA, 0), cpu(c10::DeviceType::CPU);
  const auto workspace = [&](const SweepSpec& s, c10::Device d) { return plan_memory(s, m, 1, d, 1).ranks[0].workspace; };
  const SweepSpec all = spec_with("  - {method: ties, density: 0.1}\n  - {method: model_stock}\n  - {method: tsv_m}\n");
  // TSV-M's SVD of 15 whole MLP matrices beside W is the most.
  EXPECT_EQ(workspace(all, cuda), 4 * (E + 15 * M));
  EXPECT_LT(workspace(all, cuda), 4 * 15 * E);  // bytes of the (n + 3) whole embeddings held before
  // TIES on a GPU: the embedding's trim rule (|τ|, its mask, the top-k values and indices).
  const SweepSpec ties = spec_with("  - {method: ties, density: 0.1}\n");
  EXPECT_EQ(workspace(ties, cuda), 4 * (E + E + E / 4 + 3 * k));
  // On the CPU the fused TIES holds nothing beside W; the baselines widen θ₀ once.
  EXPECT_EQ(workspace(ties, cpu), 4 * (E + E));
  // Model Stock: per row block the 12 τ, their stacked copy and θ₀.
  EXPECT_EQ(workspace(spec_with("  - {method: model_stock}\n"), cuda), 4 * (E + 26 * block));
}

TEST(MemoryPlan, PartsFollowTheModelOfDocsSizing) {
  SweepSpec spec = parse_spec(kSpec, "spec.yaml");
  // A sweep without tasks or probes evaluates nothing: no activations.
  EXPECT_EQ(plan_memory(spec, shape(), 2, c10::Device(c10::DeviceType::CPU), 1).ranks[1].activations, 0u);
  spec.eval.tasks = {"m/task.h5"};
  EXPECT_EQ(spec.schedule.device, "cpu");
  EXPECT_EQ(spec.schedule.memory_per_rank, 1'000'000u);
  const MemoryPlan p = plan_memory(spec, shape(), 2, c10::Device(c10::DeviceType::CPU), 1);
  ASSERT_EQ(p.ranks.size(), 2u);
  // Shards by bytes: rank 0 gets the 8000-byte embed, rank 1 the four 2000-byte tensors.
  EXPECT_EQ(p.ranks[0].resident, 5u * 8000u);  // (K+1) · B_r
  EXPECT_EQ(p.ranks[1].resident, 5u * 8000u);
  // Task arithmetic on the CPU (fused: the workspace only); baselines widen θ₀ beside it: 2 · 4 · E_r.
  EXPECT_EQ(p.ranks[0].workspace, 2u * 4u * 4000u);
  EXPECT_EQ(p.ranks[1].workspace, 2u * 4u * 1000u);
  // On a GPU a tensor of one row block or less is merged whole beside the workspace: W + (n+3)·E, n = 3.
  SweepSpec on_gpu = spec;
  on_gpu.schedule.memory_per_rank = 1;
  const MemoryPlan g = plan_memory(on_gpu, shape(), 2, c10::Device(c10::DeviceType::CUDA, 0), 1);
  EXPECT_EQ(g.ranks[0].workspace, 4u * (4000u + 6u * 4000u));
  EXPECT_EQ(g.ranks[0].runtime, 1'500'000'000u);
  EXPECT_EQ(p.ranks[0].merged, 8000u * 2u);  // P·e (the rank's own part is merged in place)
  const std::uint64_t act = 64u * (10u + 4u * 8u + 2u * 16u) * 4u + 64u * 32u * 2u * 4u;
  EXPECT_EQ(p.ranks[1].activations, act);
  EXPECT_EQ(p.ranks[0].runtime, 500'000'000u);
  EXPECT_EQ(p.limit, 1'000'000u);
  EXPECT_FALSE(p.fits());  // the runtime allowance alone is 500 MB
  EXPECT_EQ(p.smallest_fitting_group, 0);
}

TEST(MemoryPlan, RefusesNamingTheNumbersAndTheSmallestGroupThatFits) {
  SweepSpec spec = parse_spec(kSpec, "spec.yaml");
  const MemoryPlan g1 = plan_memory(spec, shape(), 1, c10::Device(c10::DeviceType::CPU), 1);
  // A limit between the g=2 and the g=1 peak: g=1 is refused, g=2 named as the smallest that fits.
  const MemoryPlan g2 = plan_memory(spec, shape(), 2, c10::Device(c10::DeviceType::CPU), 1);
  ASSERT_LT(g2.peak(), g1.peak());
  spec.schedule.memory_per_rank = g2.peak();
  const MemoryPlan p = plan_memory(spec, shape(), 1, c10::Device(c10::DeviceType::CPU), 1);
  EXPECT_FALSE(p.fits());
  EXPECT_EQ(p.smallest_fitting_group, 2);
  try {
    require_fit(p, spec);
    FAIL() << "a plan that does not fit was accepted";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("spec.yaml"), std::string::npos) << what;
    EXPECT_NE(what.find("smallest group size that fits is 2"), std::string::npos) << what;
  }
  EXPECT_NO_THROW(require_fit(plan_memory(spec, shape(), 2, c10::Device(c10::DeviceType::CPU), 1), spec));
  EXPECT_NE(describe_memory(p).find("does NOT fit"), std::string::npos);
}

// A Llama folder of the architecture table's tensors (GQA, untied), bf16, all zeros.
void write_llama(const std::string& dir) {
  io::LlamaConfigFields c;
  c.hidden = 32, c.intermediate = 64, c.layers = 2, c.heads = 4, c.kv_heads = 2, c.vocab = 50, c.dtype = "bfloat16";
  model::ArchDims d;
  d.vocab = 50, d.hidden = 32, d.ffn = 64, d.layers = 2, d.heads = 4, d.kv_heads = 2, d.head_dim = 8;
  std::vector<io::TensorSpec> specs;
  for (const auto& t : model::llama_tensors(d)) specs.push_back({t.name, io::DType::BF16, t.shape});
  io::HfModelWriter w(dir, specs, 1'000'000'000ull);
  w.set_config_text(io::llama_config_json(c));
  for (const auto& t : specs) w.write(t.name, at::zeros(t.shape, at::kBFloat16));
  w.commit();
}

// `checkpoints: {count: K}` with a base folder of config.json alone plans exactly what the same
// family on disk plans: the same tensors, shapes and bytes, and the same memory per rank.
TEST(MemoryPlan, AShapeOnlySpecPlansWhatTheFamilyOnDiskPlans) {
  test::TempDir dir;
  for (const char* m : {"base", "a", "b", "c"}) write_llama(dir / m);
  std::filesystem::create_directories(dir / "cfg");
  std::filesystem::copy_file(dir / "base/config.json", dir / "cfg/config.json");
  const std::string tail =
      "subsets: {sizes: [2, 3], samples: 1, seed: 3}\nmethods:\n  - {method: ties, density: 0.2}\n"
      "  - {method: tsv_m}\neval: {batch_tokens: 64}\noutput: out.h5\nschedule: {device: cpu, memory_per_rank: 1GB}\n";
  io::write_text_file(dir / "disk.yaml", "name: t\nbase: base\ncheckpoints: [a, b, c]\n" + tail);
  io::write_text_file(dir / "shape.yaml", "name: t\nbase: cfg\ncheckpoints: {count: 3}\n" + tail);
  const SweepSpec disk = load_spec(dir / "disk.yaml"), shaped = load_spec(dir / "shape.yaml");
  EXPECT_FALSE(disk.shape_only);
  ASSERT_TRUE(shaped.shape_only);
  EXPECT_EQ(shaped.checkpoint_names, (std::vector<std::string>{"checkpoint-1", "checkpoint-2", "checkpoint-3"}));
  const ModelShape a = read_model_shape(disk), b = read_model_shape(shaped);
  EXPECT_EQ(a.names, b.names);
  EXPECT_EQ(a.shapes, b.shapes);
  EXPECT_EQ(a.numel, b.numel);
  EXPECT_EQ(a.bytes, b.bytes);
  EXPECT_EQ(a.held_bytes, b.held_bytes);
  for (int g : {1, 2, 3}) {
    for (const auto device : {c10::Device(c10::DeviceType::CPU), c10::Device(c10::DeviceType::CUDA, 0)}) {
      const MemoryPlan pa = plan_memory(disk, a, g, device, 1), pb = plan_memory(shaped, b, g, device, 1);
      ASSERT_EQ(pa.ranks.size(), pb.ranks.size());
      for (std::size_t r = 0; r < pa.ranks.size(); ++r) {
        EXPECT_EQ(pa.ranks[r].resident, pb.ranks[r].resident) << g << " " << r;
        EXPECT_EQ(pa.ranks[r].workspace, pb.ranks[r].workspace) << g << " " << r;
        EXPECT_EQ(pa.ranks[r].total(), pb.ranks[r].total()) << g << " " << r;
      }
    }
  }
  // A shape-only spec is for planning: the work that needs the checkpoints refuses it by name.
  const std::string e = test::error_of([&] { require_checkpoints_on_disk(shaped, "a sweep"); });
  EXPECT_NE(e.find("shape.yaml: checkpoints: {count: 3} is a shape-only spec"), std::string::npos) << e;
  EXPECT_NO_THROW(require_checkpoints_on_disk(disk, "a sweep"));
  // Without torch_dtype the stored bytes are unknown: refused, not assumed.
  io::write_text_file(dir / "cfg/config.json",
                      [&] {
                        std::string t = io::read_text_file(dir / "cfg/config.json");
                        t.replace(t.find("\"torch_dtype\""), std::string("\"torch_dtype\"").size(), "\"x_dtype\"");
                        return t;
                      }());
  const std::string d = test::error_of([&] { read_model_shape(load_spec(dir / "shape.yaml")); });
  EXPECT_NE(d.find("torch_dtype: is not given"), std::string::npos) << d;
}

TEST(MemoryPlan, SpecRejectsBadDeviceAndMemory) {
  std::string bad = kSpec;
  bad.replace(bad.find("device: cpu"), 11, "device: tpu");
  EXPECT_THROW(parse_spec(bad, "spec.yaml"), Error);
  std::string mem = kSpec;
  mem.replace(mem.find("memory_per_rank: 1MB"), 20, "memory_per_rank: lots");
  EXPECT_THROW(parse_spec(mem, "spec.yaml"), Error);
}

TEST(ChunkedSums, AtenTwinsEqualTheLoopsOnTheCpu) {
  for (const std::int64_t n : {1, 4095, 4096, 4097, 100000, 2 * 1024 * 4096 + 5}) {  // the last: several slabs
    const at::Tensor a = at::randn({n}), b = at::randn({n});
    const double dot = chunked_dot(a.data_ptr<float>(), b.data_ptr<float>(), n);
    const double sq = chunked_sqdiff(a.data_ptr<float>(), b.data_ptr<float>(), n);
    EXPECT_NEAR(chunked_dot_aten(a, b), dot, 1e-12 * (1 + std::abs(dot))) << n;
    EXPECT_NEAR(chunked_sqdiff_aten(a, b), sq, 1e-12 * (1 + sq)) << n;
    // The tensor forms take the loops for contiguous float32 CPU tensors: bitwise.
    EXPECT_EQ(chunked_dot(a, b), dot);
    EXPECT_EQ(chunked_sqdiff(a, b), sq);
    // A base held in bf16 or f16: bitwise the float32 loop on the widened base (widening is exact).
    for (const auto dt : {at::kBFloat16, at::kHalf}) {
      const at::Tensor held = b.to(dt), widened = held.to(at::kFloat);
      EXPECT_EQ(chunked_sqdiff(a, held), chunked_sqdiff(a.data_ptr<float>(), widened.data_ptr<float>(), n)) << n;
    }
  }
}

}  // namespace
}  // namespace ms::sweep
