// The only io translation unit that needs ATen: dtype mapping and zero-copy tensor views.
#include <ATen/ATen.h>

#include <cstring>

#include "mergesweep/core/error.hpp"
#include "mergesweep/io/hf_model.hpp"
#include "mergesweep/io/aten_dtype.hpp"
#include "mergesweep/io/safetensors_file.hpp"

namespace ms::io {

std::optional<c10::ScalarType> to_scalar_type(DType dtype) {
  switch (dtype) {
    case DType::BOOL: return c10::ScalarType::Bool;
    case DType::U8: return c10::ScalarType::Byte;
    case DType::I8: return c10::ScalarType::Char;
    case DType::I16: return c10::ScalarType::Short;
    case DType::F16: return c10::ScalarType::Half;
    case DType::BF16: return c10::ScalarType::BFloat16;
    case DType::I32: return c10::ScalarType::Int;
    case DType::F32: return c10::ScalarType::Float;
    case DType::F64: return c10::ScalarType::Double;
    case DType::I64: return c10::ScalarType::Long;
    default: return std::nullopt;
  }
}

DType from_scalar_type(c10::ScalarType type) {
  switch (type) {
    case c10::ScalarType::Bool: return DType::BOOL;
    case c10::ScalarType::Byte: return DType::U8;
    case c10::ScalarType::Char: return DType::I8;
    case c10::ScalarType::Short: return DType::I16;
    case c10::ScalarType::Half: return DType::F16;
    case c10::ScalarType::BFloat16: return DType::BF16;
    case c10::ScalarType::Int: return DType::I32;
    case c10::ScalarType::Float: return DType::F32;
    case c10::ScalarType::Double: return DType::F64;
    case c10::ScalarType::Long: return DType::I64;
    default: fail("", "", std::string("tensor type ") + c10::toString(type) + " cannot be stored in safetensors by mergesweep");
  }
}

at::Tensor SafetensorsFile::tensor(std::string_view name) const { return tensor(require(name)); }

at::Tensor SafetensorsFile::tensor(const TensorEntry& e) const {
  const auto type = to_scalar_type(e.dtype);
  if (!type) {
    fail(path(), "'" + e.name + "'", std::string("dtype ") + dtype_name(e.dtype) +
                                         " has no equivalent in this libtorch build; convert the checkpoint first");
  }
  const auto options = at::TensorOptions().dtype(*type).device(at::kCPU);
  std::uint8_t* ptr = file_->data() + header_.data_offset() + e.begin;
  if (reinterpret_cast<std::uintptr_t>(ptr) % dtype_size(e.dtype) != 0) {
    // Misaligned elements are legal in safetensors but not for vectorized kernels: copy.
    at::Tensor out = at::empty(e.shape, options);
    std::memcpy(out.data_ptr(), ptr, e.nbytes());
    return out;
  }
  std::shared_ptr<MappedFile> keep = file_;
  return at::from_blob(ptr, e.shape, [keep](void*) mutable { keep.reset(); }, options);
}

}  // namespace ms::io

namespace ms::io {

void HfModelWriter::write(const std::string& name, const at::Tensor& tensor) {
  const at::Tensor t = tensor.is_contiguous() ? tensor : tensor.contiguous();
  write(name, t.data_ptr(), static_cast<std::uint64_t>(t.numel()) * t.element_size());
}

}  // namespace ms::io

namespace ms::io {

at::Tensor HfModel::tensor(const std::string& name) const { return shard_of(name).tensor(require(name)); }

}  // namespace ms::io
