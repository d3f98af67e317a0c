#include "mergesweep/io/integrity.hpp"

#include <cstring>
#include <set>

#include "mergesweep/model/arch_table.hpp"

namespace ms::io {
namespace {

// A float is non-finite when its exponent bits are all ones (F8_E4M3 has no Inf: only S.1111.111 is NaN).
template <typename U>
std::uint64_t count_exponent_all_ones(const std::uint8_t* data, std::uint64_t nbytes, U mask) {
  std::uint64_t bad = 0;
  const std::uint64_t n = nbytes / sizeof(U);
  for (std::uint64_t i = 0; i < n; ++i) {
    U v;
    std::memcpy(&v, data + i * sizeof(U), sizeof(U));
    bad += (v & mask) == mask;
  }
  return bad;
}

std::string sq(const std::string& s) { return "'" + s + "'"; }

}  // namespace

std::uint64_t count_non_finite(DType dtype, const std::uint8_t* data, std::uint64_t nbytes) {
  switch (dtype) {
    case DType::F32: return count_exponent_all_ones<std::uint32_t>(data, nbytes, 0x7F800000u);
    case DType::F64: return count_exponent_all_ones<std::uint64_t>(data, nbytes, 0x7FF0000000000000ull);
    case DType::F16: return count_exponent_all_ones<std::uint16_t>(data, nbytes, 0x7C00);
    case DType::BF16: return count_exponent_all_ones<std::uint16_t>(data, nbytes, 0x7F80);
    case DType::F8_E5M2: return count_exponent_all_ones<std::uint8_t>(data, nbytes, 0x7C);
    case DType::F8_E4M3: return count_exponent_all_ones<std::uint8_t>(data, nbytes, 0x7F);
    default: return 0;
  }
}

IntegrityReport check_integrity(const HfModel& model, bool scan_values) {
  IntegrityReport r;
  if (model.index_total_size() && *model.index_total_size() != model.total_bytes()) {
    r.problems.push_back(model.index_path() + ": metadata.total_size: says " + std::to_string(*model.index_total_size()) +
                         " bytes but the listed tensors hold " + std::to_string(model.total_bytes()));
  }
  if (model.config() && model.config()->is_known_decoder()) {
    const ModelConfig& c = *model.config();
    const std::string cfg = model.path() + "/config.json";
    const auto expect_shape = [&](const std::string& name, const std::vector<std::int64_t>& shape) {
      const TensorEntry* e = model.find(name);
      if (e == nullptr) {
        r.problems.push_back(model.path() + ": " + sq(name) + ": tensor required by config.json (" + c.model_type +
                             ") is missing");
      } else if (e->shape != shape) {
        std::string want, got;
        for (auto d : shape) want += (want.empty() ? "" : ", ") + std::to_string(d);
        for (auto d : e->shape) got += (got.empty() ? "" : ", ") + std::to_string(d);
        r.problems.push_back(model.path() + ": " + sq(name) + ": shape [" + got + "] does not match config.json, expected [" +
                             want + "]");
      }
    };
    // The tensors outside the layers, from the architecture table (the layers' count below).
    for (const auto& t : model::llama_global_tensors(arch_dims(c))) expect_shape(t.name, t.shape);
    std::set<std::int64_t> layers;
    for (const auto& name : model.tensor_names()) {
      if (name.rfind("model.layers.", 0) != 0) continue;
      layers.insert(std::strtoll(name.c_str() + 13, nullptr, 10));
    }
    const std::int64_t found = layers.empty() ? 0 : *layers.rbegin() + 1;
    if (found != c.num_hidden_layers || static_cast<std::int64_t>(layers.size()) != found) {
      r.problems.push_back(cfg + ": num_hidden_layers: says " + std::to_string(c.num_hidden_layers) + " but the tensors hold " +
                           std::to_string(layers.size()) + " layers (highest index " + std::to_string(found - 1) + ")");
    }
  }
  if (scan_values) {
    for (const auto& shard : model.shards()) {
      for (const auto& e : shard->header().tensors) {
        if (!dtype_is_float(e.dtype)) continue;
        r.values_scanned += static_cast<std::uint64_t>(e.numel());
        const std::uint64_t bad = count_non_finite(e.dtype, shard->data(e), e.nbytes());
        if (bad > 0) {
          r.problems.push_back(shard->path() + ": " + sq(e.name) + ": " + std::to_string(bad) + " of " +
                               std::to_string(e.numel()) + " values are NaN or Inf");
        }
      }
    }
  }
  return r;
}

}  // namespace ms::io
