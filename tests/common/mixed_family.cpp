#include "common/mixed_family.hpp"

#include <ATen/ATen.h>

#include "mergesweep/io/fs_util.hpp"
#include "mergesweep/io/hf_model.hpp"

namespace ms::test {
namespace {

at::ScalarType dtype_for(const std::string& plan, std::size_t tensor_index) {
  if (plan == "bfloat16") return at::kBFloat16;
  if (plan == "float16") return at::kHalf;
  if (plan == "mixed") {
    static const at::ScalarType cycle[] = {at::kBFloat16, at::kHalf, at::kFloat};
    return cycle[tensor_index % 3];
  }
  return at::kFloat;
}

io::DType io_dtype(at::ScalarType t) {
  return t == at::kBFloat16 ? io::DType::BF16 : t == at::kHalf ? io::DType::F16 : io::DType::F32;
}

// One model twice: in the plan's dtypes (MIXED) and those values widened back to float32 (REF).
void write_twins(const std::string& src, const std::string& plan, const std::string& mixed, const std::string& ref) {
  const io::HfModel m = io::HfModel::open(src);
  const auto names = m.tensor_names();
  std::vector<io::TensorSpec> mixed_specs, ref_specs;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const auto& e = m.require(names[i]);
    mixed_specs.push_back({names[i], io_dtype(dtype_for(plan, i)), e.shape});
    ref_specs.push_back({names[i], io::DType::F32, e.shape});
  }
  io::HfModelWriter wm(mixed, mixed_specs, 5'000'000'000ull), wr(ref, ref_specs, 5'000'000'000ull);
  const std::string config = io::read_text_file(src + "/config.json");
  wm.set_config_text(config);
  wr.set_config_text(config);
  for (std::size_t i = 0; i < names.size(); ++i) {
    const at::Tensor stored = m.tensor(names[i]).to(dtype_for(plan, i)).contiguous();
    wm.write(names[i], stored);
    wr.write(names[i], stored.to(at::kFloat).contiguous());
  }
  wm.commit();
  wr.commit();
}

}  // namespace

void write_mixed_twins(const std::string& src, const std::vector<std::string>& names, const MixedPlan& plan,
                       const std::string& mixed, const std::string& ref) {
  write_twins(src + "/base", plan.base, mixed + "/base", ref + "/base");
  for (std::size_t k = 0; k < names.size(); ++k) {
    const std::string& p = k < plan.checkpoints.size() ? plan.checkpoints[k] : std::string("float32");
    write_twins(src + "/" + names[k], p, mixed + "/" + names[k], ref + "/" + names[k]);
  }
}

}  // namespace ms::test
