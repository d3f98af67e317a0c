#include "mergesweep/testbed/synthetic_family.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <filesystem>
#include <functional>
#include "mergesweep/io/hf_config.hpp"

#include "mergesweep/core/error.hpp"
#include "mergesweep/core/hash.hpp"
#include "mergesweep/io/fs_util.hpp"
#include "mergesweep/io/hf_model.hpp"

namespace ms::testbed {
namespace {

struct Tensor2 {
  std::string name;
  std::vector<std::int64_t> shape;
  bool is_norm;
};

std::vector<Tensor2> llama_tensors(const SyntheticPreset& p) {
  const std::int64_t head_dim = p.hidden / p.heads;
  std::vector<Tensor2> t;
  t.push_back({"model.embed_tokens.weight", {p.vocab, p.hidden}, false});
  for (std::int64_t l = 0; l < p.layers; ++l) {
    const std::string b = "model.layers." + std::to_string(l) + ".";
    t.push_back({b + "input_layernorm.weight", {p.hidden}, true});
    t.push_back({b + "self_attn.q_proj.weight", {p.heads * head_dim, p.hidden}, false});
    t.push_back({b + "self_attn.k_proj.weight", {p.kv_heads * head_dim, p.hidden}, false});
    t.push_back({b + "self_attn.v_proj.weight", {p.kv_heads * head_dim, p.hidden}, false});
    t.push_back({b + "self_attn.o_proj.weight", {p.hidden, p.heads * head_dim}, false});
    t.push_back({b + "post_attention_layernorm.weight", {p.hidden}, true});
    t.push_back({b + "mlp.gate_proj.weight", {p.ffn, p.hidden}, false});
    t.push_back({b + "mlp.up_proj.weight", {p.ffn, p.hidden}, false});
    t.push_back({b + "mlp.down_proj.weight", {p.hidden, p.ffn}, false});
  }
  t.push_back({"model.norm.weight", {p.hidden}, true});
  if (!p.tied) t.push_back({"lm_head.weight", {p.vocab, p.hidden}, false});
  return t;
}

std::string config_text(const SyntheticPreset& p, const std::string& dtype) {
  io::LlamaConfigFields f;
  f.hidden = p.hidden;
  f.intermediate = p.ffn;
  f.layers = p.layers;
  f.heads = p.heads;
  f.kv_heads = p.kv_heads;
  f.vocab = p.vocab;
  f.tied = p.tied;
  f.dtype = dtype;
  return io::llama_config_json(f);
}

// Every random draw is a pure function of (seed, purpose): one generator per (model, tensor).
at::Generator generator_for(std::uint64_t seed, int model, const std::string& tensor) {
  // FNV-1a over the name, from a basis made of the seed and the model.
  const std::uint64_t h =
      fnv1a64(tensor, seed * kGoldenGamma ^ (static_cast<std::uint64_t>(model) + 0x632BE59BD9B4E019ull));
  return at::make_generator<at::CPUGeneratorImpl>(h);
}

at::Tensor base_tensor(const Tensor2& t, std::uint64_t seed) {
  if (t.is_norm) return at::ones(t.shape, at::kFloat);
  auto gen = generator_for(seed, -1, t.name);
  return at::randn(t.shape, gen, at::kFloat) * 0.02;
}

// Fine-tune k's delta: the kind cycles with k so that a family holds every structure merging
// methods react to differently.
at::Tensor delta_tensor(const Tensor2& t, int k, std::uint64_t seed) {
  auto gen = generator_for(seed, k, t.name);
  const double scale = 0.002;
  if (t.is_norm) return at::randn(t.shape, gen, at::kFloat) * scale;
  switch (k % 4) {
    case 0: return at::randn(t.shape, gen, at::kFloat) * scale;  // dense
    case 1: {                                                     // sparse: 5% of entries, larger
      auto mask = at::rand(t.shape, gen, at::kFloat).lt(0.05).to(at::kFloat);
      return at::randn(t.shape, gen, at::kFloat) * (scale * 4) * mask;
    }
    case 2: {  // low-rank (rank 4)
      const std::int64_t r = 4;
      auto a = at::randn({t.shape[0], r}, gen, at::kFloat);
      auto b = at::randn({r, t.shape[1]}, gen, at::kFloat);
      return at::matmul(a, b) * (scale / 2);
    }
    default: {  // sign-conflicting: the opposite of fine-tune k-3's direction plus noise
      auto other = delta_tensor(t, k - 3, seed);
      return -other + at::randn(t.shape, gen, at::kFloat) * (scale / 4);
    }
  }
}

at::ScalarType parse_dtype(const std::string& d) {
  if (d == "bfloat16") return at::kBFloat16;
  if (d == "float16") return at::kHalf;
  if (d == "float32") return at::kFloat;
  fail("", "--dtype", "'" + d + "' is not one of bfloat16, float16, float32");
}

io::DType to_io(at::ScalarType t) {
  return t == at::kBFloat16 ? io::DType::BF16 : t == at::kHalf ? io::DType::F16 : io::DType::F32;
}

void write_model(const std::string& dir, const SyntheticPreset& p, const SyntheticFamilyOptions& o, int k) {
  const auto type = parse_dtype(o.dtype);
  const auto tensors = llama_tensors(p);
  std::vector<io::TensorSpec> specs;
  specs.reserve(tensors.size());
  for (const auto& t : tensors) specs.push_back({t.name, to_io(type), t.shape});
  io::HfModelWriter w(dir, specs, o.max_shard_bytes);
  for (const auto& t : tensors) {
    at::Tensor v = base_tensor(t, o.seed);
    if (k >= 0) v += delta_tensor(t, k, o.seed);
    w.write(t.name, v.to(type).contiguous());
  }
  w.set_config_text(config_text(p, o.dtype));
  w.add_text_file("generation_config.json", "{\n  \"bos_token_id\": 1,\n  \"eos_token_id\": 2\n}\n");
  w.commit();
}

}  // namespace

const std::vector<SyntheticPreset>& synthetic_presets() {
  static const std::vector<SyntheticPreset> kPresets = {
      {"tiny", 2, 64, 128, 4, 2, 256, true},
      {"small", 4, 256, 688, 8, 4, 4096, false},
      {"100m", 12, 768, 2048, 12, 4, 32000, false},
      {"250m", 16, 1024, 2816, 16, 4, 32000, false},
  };
  return kPresets;
}

void write_synthetic_family(const std::string& out_dir, const SyntheticFamilyOptions& o) {
  const SyntheticPreset* preset = nullptr;
  for (const auto& p : synthetic_presets()) {
    if (p.name == o.preset) preset = &p;
  }
  if (preset == nullptr) fail("", "--preset", "unknown preset '" + o.preset + "'; expected tiny, small, 100m or 250m");
  if (o.checkpoints < 1 || o.checkpoints > 99) fail("", "--checkpoints", "must be between 1 and 99");
  parse_dtype(o.dtype);
  if (io::path_exists(out_dir)) fail(out_dir, "", "already exists; refusing to overwrite");
  const std::string tmp = io::temp_sibling(out_dir);
  std::filesystem::create_directories(tmp);
  try {
    write_model(tmp + "/base", *preset, o, -1);
    for (int k = 0; k < o.checkpoints; ++k) {
      char name[16];
      std::snprintf(name, sizeof name, "/ft-%02d", k);
      write_model(tmp + name, *preset, o, k);
    }
    io::rename_into_place(tmp, out_dir);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove_all(tmp, ec);
    throw;
  }
}

}  // namespace ms::testbed
