// Integrity checks beyond header validity: index totals, config vs tensors, non-finite values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mergesweep/io/hf_model.hpp"

namespace ms::io {

struct IntegrityReport {
  std::vector<std::string> problems;  // each names the file and the tensor or field
  std::uint64_t values_scanned = 0;   // elements checked for NaN/Inf (0 unless asked)
  bool ok() const noexcept { return problems.empty(); }
};

// Structural checks; with `scan_values`, also reads every float tensor looking for NaN or Inf.
IntegrityReport check_integrity(const HfModel& model, bool scan_values);

// Number of non-finite elements in `nbytes` of raw `dtype` data (0 for integer types).
std::uint64_t count_non_finite(DType dtype, const std::uint8_t* data, std::uint64_t nbytes);

}  // namespace ms::io
