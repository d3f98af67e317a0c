// libFuzzer target: any byte string as config.json. Accept or throw ms::Error; nothing else.
#include <cstddef>
#include <cstdint>
#include <string>

#include "mergesweep/core/error.hpp"
#include "mergesweep/io/hf_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto c = ms::io::parse_model_config(std::string(reinterpret_cast<const char*>(data), size), "config.json");
    if (c.num_attention_heads > 0 && c.num_key_value_heads <= 0) __builtin_trap();
  } catch (const ms::Error&) {
  }
  return 0;
}
