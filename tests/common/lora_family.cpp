#include "common/lora_family.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "mergesweep/io/fs_util.hpp"
#include "mergesweep/io/hf_model.hpp"
#include "mergesweep/io/lora_adapter.hpp"
#include "mergesweep/io/safetensors_writer.hpp"

namespace ms::test {
namespace {

namespace fs = std::filesystem;

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}
std::string last_part(const std::string& module) { return module.substr(module.find_last_of('.') + 1); }

at::ScalarType scalar_type(const std::string& dtype) {
  return dtype == "bfloat16" ? at::kBFloat16 : dtype == "float16" ? at::kHalf : at::kFloat;
}
io::DType io_dtype(const std::string& dtype) {
  return dtype == "bfloat16" ? io::DType::BF16 : dtype == "float16" ? io::DType::F16 : io::DType::F32;
}

}  // namespace

void write_lora_adapter(const std::string& base_dir, const std::string& out, const LoraPlan& plan) {
  const io::HfModel base = io::HfModel::open(base_dir);
  at::manual_seed(plan.seed);
  const at::ScalarType st = scalar_type(plan.dtype);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& name : base.tensor_names()) {
    const auto& shape = base.require(name).shape;
    if (std::find(plan.modules_to_save.begin(), plan.modules_to_save.end(), name) != plan.modules_to_save.end())
      tensors.emplace_back("base_model.model." + name,
                           (base.tensor(name).to(at::kFloat) + at::randn(shape) * 0.05).to(st));
    if (!ends_with(name, ".weight") || shape.size() != 2) continue;
    const std::string module = name.substr(0, name.size() - 7);
    const std::string part = last_part(module);
    if (std::find(plan.targets.begin(), plan.targets.end(), part) == plan.targets.end()) continue;
    const std::int64_t r = plan.rank_pattern.count(part) ? plan.rank_pattern.at(part) : plan.r;
    const bool embedding = part == "embed_tokens";  // peft: A [r, rows], B [columns, r]; B·A transposed
    const std::string a_name = embedding ? ".lora_embedding_A" : ".lora_A.weight";
    const std::string b_name = embedding ? ".lora_embedding_B" : ".lora_B.weight";
    const at::Tensor a = at::randn({r, embedding ? shape[0] : shape[1]}) * 0.05;
    const at::Tensor b = at::randn({embedding ? shape[1] : shape[0], r}) * 0.05;
    tensors.emplace_back("base_model.model." + module + a_name, a.to(st));
    tensors.emplace_back("base_model.model." + module + b_name, b.to(st));
  }
  fs::create_directories(out);
  std::vector<io::TensorSpec> specs;
  for (const auto& [name, t] : tensors)
    specs.push_back({name, io_dtype(plan.dtype), std::vector<std::int64_t>(t.sizes().begin(), t.sizes().end())});
  io::SafetensorsWriter w(out + "/adapter_model.safetensors", specs);
  for (const auto& [name, t] : tensors) {
    const at::Tensor c = t.contiguous();
    w.write(name, c.data_ptr(), c.nbytes());
  }
  w.commit();
  nlohmann::json j = {{"peft_type", "LORA"},
                      {"r", plan.r},
                      {"lora_alpha", plan.alpha},
                      {"use_rslora", plan.rslora},
                      {"fan_in_fan_out", false},
                      {"target_modules", plan.targets},
                      {"base_model_name_or_path", fs::absolute(base_dir).string()},
                      {"rank_pattern", plan.rank_pattern},
                      {"alpha_pattern", plan.alpha_pattern}};
  std::vector<std::string> saved;
  for (const auto& n : plan.modules_to_save) saved.push_back(n.substr(0, n.size() - 7));
  j["modules_to_save"] = saved.empty() ? nlohmann::json(nullptr) : nlohmann::json(saved);
  io::write_text_file(out + "/adapter_config.json", j.dump(2));
}

void write_densified(const std::string& adapter, const std::string& base, const std::string& out) {
  const std::string folded = io::fold_lora_adapter(adapter, base);
  fs::create_directories(out);
  for (const auto& e : fs::directory_iterator(folded))
    if (e.path().filename() != "mergesweep_folded.json") fs::copy(e.path(), out + "/" + e.path().filename().string());
}

}  // namespace ms::test
