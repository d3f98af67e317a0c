#include "mergesweep/io/dtype.hpp"

namespace ms::io {
namespace {

struct DTypeInfo {
  DType dtype;
  const char* name;
  std::size_t size;
  bool is_float;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::BOOL, "BOOL", 1, false},   {DType::U8, "U8", 1, false},
    {DType::I8, "I8", 1, false},       {DType::F8_E5M2, "F8_E5M2", 1, true},
    {DType::F8_E4M3, "F8_E4M3", 1, true}, {DType::I16, "I16", 2, false},
    {DType::U16, "U16", 2, false},     {DType::F16, "F16", 2, true},
    {DType::BF16, "BF16", 2, true},    {DType::I32, "I32", 4, false},
    {DType::U32, "U32", 4, false},     {DType::F32, "F32", 4, true},
    {DType::F64, "F64", 8, true},      {DType::I64, "I64", 8, false},
    {DType::U64, "U64", 8, false},
};

const DTypeInfo& info(DType d) { return kDTypes[static_cast<std::size_t>(d)]; }

}  // namespace

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& d : kDTypes) {
    if (name == d.name) return d.dtype;
  }
  return std::nullopt;
}

const char* dtype_name(DType dtype) { return info(dtype).name; }
std::size_t dtype_size(DType dtype) { return info(dtype).size; }
bool dtype_is_float(DType dtype) { return info(dtype).is_float; }

}  // namespace ms::io
