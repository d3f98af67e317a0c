// The safetensors element types. The enum order is the safetensors crate's `Dtype` order, which
// its serializer uses to lay tensors out (widest alignment first), so our writer can match it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace ms::io {

enum class DType : std::uint8_t {
  BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64
};

// "F32" -> DType::F32; nullopt for a name safetensors does not define.
std::optional<DType> dtype_from_name(std::string_view name);
const char* dtype_name(DType dtype);
std::size_t dtype_size(DType dtype);
bool dtype_is_float(DType dtype);

}  // namespace ms::io
