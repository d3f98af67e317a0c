// libFuzzer target: any byte string as a whole safetensors file. The parser must either accept it
// or throw ms::Error; any other exception, crash or sanitizer report is a bug.
#include <cstddef>
#include <cstdint>

#include "mergesweep/core/error.hpp"
#include "mergesweep/io/safetensors_header.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto h = ms::io::parse_safetensors_header(data, size, size, "fuzz.safetensors");
    // Accepted headers must describe bytes inside the input.
    for (const auto& e : h.tensors) {
      if (h.data_offset() + e.end > size) __builtin_trap();
    }
  } catch (const ms::Error&) {
  }
  return 0;
}
