// PEFT LoRA adapters written over a model folder, with random factors, as peft's save_pretrained
// lays them out (adapter_config.json + adapter_model.safetensors, names "base_model.model.<module>.
// lora_A.weight", an embedding's lora_embedding_A/B, modules_to_save tensors under their own name),
// and the same adapters densified: folded (io::fold_lora_adapter) and copied as plain checkpoints.
// A family of both must merge bitwise alike: the resident sweep holds the first factored.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace ms::test {

struct LoraPlan {
  std::int64_t r = 4;
  double alpha = 8;
  bool rslora = false;
  std::vector<std::string> targets;                  // module names' last part: "q_proj", "embed_tokens"
  std::map<std::string, std::int64_t> rank_pattern;  // peft's patterns, keyed by the module's last part
  std::map<std::string, double> alpha_pattern;
  std::vector<std::string> modules_to_save;  // base tensors saved whole: "lm_head.weight"
  std::string dtype = "float32";             // of A, B and the saved tensors: float32, bfloat16, float16
  std::uint64_t seed = 1;
};

// Writes an adapter over the model folder BASE into OUT (its config names BASE).
void write_lora_adapter(const std::string& base, const std::string& out, const LoraPlan& plan);
// Folds ADAPTER onto BASE and copies the folded model to OUT without the fold's marker: a plain
// checkpoint holding the same tensors, which every path reads densely.
void write_densified(const std::string& adapter, const std::string& base, const std::string& out);

}  // namespace ms::test
