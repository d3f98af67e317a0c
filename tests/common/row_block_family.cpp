#include "common/row_block_family.hpp"

#include <ATen/ATen.h>

#include <map>

#include "mergesweep/io/hf_config.hpp"
#include "mergesweep/io/hf_model.hpp"

namespace ms::test {
namespace {

void write_model(const std::string& dir, std::uint64_t seed, const std::map<std::string, at::Tensor>* base,
                 const std::string& dtype, bool same_lm_head) {
  const bool bf16 = dtype == "bfloat16";
  std::vector<io::TensorSpec> specs;
  for (const auto& [name, shape] : row_block_tensors()) specs.push_back({name, bf16 ? io::DType::BF16 : io::DType::F32, shape});
  io::HfModelWriter w(dir, specs, 5'000'000'000ull);
  io::LlamaConfigFields c;  // the loader wants a decoder config; the tensors need not match it
  c.hidden = 1000, c.intermediate = 1100, c.layers = 1, c.heads = 10, c.kv_heads = 10, c.vocab = 2100;
  c.dtype = dtype;
  w.set_config_text(io::llama_config_json(c));
  at::manual_seed(seed);
  for (const auto& [name, shape] : row_block_tensors()) {
    at::Tensor t = at::randn(shape);
    if (base) t = same_lm_head && name == "lm_head.weight" ? base->at(name) : base->at(name) + at::randint(-8, 9, shape, at::kFloat) * 0.125f;
    w.write(name, bf16 ? t.to(at::kBFloat16) : t);
  }
  w.commit();
}

}  // namespace

const std::vector<std::pair<std::string, std::vector<std::int64_t>>>& row_block_tensors() {
  static const std::vector<std::pair<std::string, std::vector<std::int64_t>>> kTensors = {
      {"model.embed_tokens.weight", {2100, 1000}},
      {"model.layers.0.mlp.up_proj.weight", {1100, 1000}},
      {"model.layers.0.self_attn.q_proj.weight", {64, 64}},
      {"model.norm.weight", {1000}},
      {"model.layers.0.post_attention_layernorm.weight", {1100000}},
      {"lm_head.weight", {1500, 700}},
  };
  return kTensors;
}

void write_row_block_family(const std::string& dir, int checkpoints, const std::string& dtype) {
  write_model(dir + "/base", 1, nullptr, dtype, false);
  const io::HfModel base = io::HfModel::open(dir + "/base");
  std::map<std::string, at::Tensor> b;
  for (const auto& [name, _] : row_block_tensors()) b[name] = base.tensor(name).to(at::kFloat).clone();
  for (int i = 0; i < checkpoints; ++i)
    write_model(dir + "/ft-" + std::to_string(i), 10 + static_cast<std::uint64_t>(i), &b, dtype, i == 0);
}

}  // namespace ms::test
