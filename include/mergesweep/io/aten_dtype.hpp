// Mapping between safetensors dtypes and ATen scalar types (only for TUs that use ATen).
#pragma once

#include <c10/core/ScalarType.h>

#include <optional>

#include "mergesweep/io/dtype.hpp"

namespace ms::io {

// nullopt for dtypes this libtorch build cannot represent (F8 before torch 2.1, unsigned >8 bit).
std::optional<c10::ScalarType> to_scalar_type(DType dtype);
// Throws ms::Error for ATen types safetensors cannot store.
DType from_scalar_type(c10::ScalarType type);

}  // namespace ms::io
