// The architecture table: names, shapes from the config's sizes, kinds.
#include <gtest/gtest.h>

#include "mergesweep/model/arch_table.hpp"

namespace ms::model {
namespace {

ArchDims dims(bool tied) {
  ArchDims d;
  d.vocab = 11;
  d.hidden = 8;
  d.ffn = 12;
  d.layers = 2;
  d.heads = 4;
  d.kv_heads = 2;
  d.head_dim = 3;  // not hidden / heads: shapes must use head_dim
  d.tied = tied;
  return d;
}

TEST(ArchTable, LlamaTensorsInCheckpointOrderWithShapesFromTheConfig) {
  const auto t = llama_tensors(dims(false));
  ASSERT_EQ(t.size(), 1u + 2 * 9 + 2);
  EXPECT_EQ(t.front().name, "model.embed_tokens.weight");
  EXPECT_EQ(t.front().shape, (std::vector<std::int64_t>{11, 8}));
  EXPECT_EQ(t[1].name, "model.layers.0.input_layernorm.weight");
  EXPECT_EQ(t[2].name, "model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(t[2].shape, (std::vector<std::int64_t>{12, 8}));  // heads * head_dim
  EXPECT_EQ(t[3].shape, (std::vector<std::int64_t>{6, 8}));   // k: kv_heads * head_dim
  EXPECT_EQ(t[5].name, "model.layers.0.self_attn.o_proj.weight");
  EXPECT_EQ(t[5].shape, (std::vector<std::int64_t>{8, 12}));
  EXPECT_EQ(t[9].name, "model.layers.0.mlp.down_proj.weight");
  EXPECT_EQ(t[9].shape, (std::vector<std::int64_t>{8, 12}));
  EXPECT_EQ(t[10].name, "model.layers.1.input_layernorm.weight");
  EXPECT_EQ(t[t.size() - 2].name, "model.norm.weight");
  EXPECT_EQ(t.back().name, "lm_head.weight");
  EXPECT_EQ(t.back().kind, TensorKind::LmHead);
  EXPECT_EQ(llama_tensors(dims(true)).back().name, "model.norm.weight");  // tied: no lm_head
  EXPECT_EQ(llama_global_tensors(dims(true)).size(), 2u);
  EXPECT_EQ(llama_global_tensors(dims(false)).size(), 3u);
}

TEST(ArchTable, EveryTableTensorHasTheKindItsNameGives) {
  for (const auto& t : llama_tensors(dims(false))) EXPECT_EQ(tensor_kind(t.name), t.kind) << t.name;
}

TEST(ArchTable, KindsOfExtraTensorsAndTheArchiveColumnOrder) {
  EXPECT_EQ(tensor_kind("model.layers.3.self_attn.q_norm.weight"), TensorKind::Norm);  // qwen3
  EXPECT_EQ(tensor_kind("model.layers.3.self_attn.q_proj.bias"), TensorKind::Attn);    // qwen2
  EXPECT_EQ(tensor_kind("model.rotary_emb.inv_freq"), TensorKind::Other);
  // The archive's l2_<kind> columns are in this order (a format change otherwise).
  EXPECT_EQ(tensor_kind_names(), (std::vector<std::string>{"embed", "lm_head", "attn", "mlp", "norm", "other"}));
}

TEST(ArchTable, LayerProjectionsAreTheSevenMatrices) {
  int n = 0;
  for (const auto& t : llama_layer_tensors(dims(false), 0)) n += is_layer_projection(t.name) ? 1 : 0;
  EXPECT_EQ(n, 7);
  EXPECT_FALSE(is_layer_projection("model.layers.0.input_layernorm.weight"));
  EXPECT_FALSE(is_layer_projection("model.layers.0.self_attn.q_proj.bias"));
  EXPECT_FALSE(is_layer_projection("model.embed_tokens.weight"));
}

}  // namespace
}  // namespace ms::model
