// A counter-based random stream: value i of stream (seed, purpose) is a hash of the three, so any
// draw can be made in any order, on any thread, with any torch version, and come out the same.
#pragma once

#include <cstdint>
#include <string_view>

#include "mergesweep/core/hash.hpp"

namespace ms::eval {

class CounterRng {
 public:
  CounterRng(std::uint64_t seed, std::string_view purpose, std::uint64_t sub = 0) {
    // FNV-1a of the purpose from a basis of the stream's own (not FNV's standard offset: every
    // stream drawn so far depends on it).
    const std::uint64_t h = fnv1a64(purpose, 1469598103934665603ull);
    key_ = mix(mix(seed ^ 0x6a09e667f3bcc908ull) ^ h ^ mix(sub + 0x3c6ef372fe94f82bull));
  }
  // The i-th 64-bit value of the stream.
  std::uint64_t bits(std::uint64_t i) const { return mix(key_ + (i + 1) * kGoldenGamma); }
  // Uniform in [0, 1) with 24 random bits (exact in float32).
  float uniform(std::uint64_t i) const { return static_cast<float>(bits(i) >> 40) * (1.0f / 16777216.0f); }
  // Uniform integer in [0, n) (n > 0), by 128-bit multiply (bias < 2^-64 n).
  std::uint64_t below(std::uint64_t i, std::uint64_t n) const {
    return static_cast<std::uint64_t>((static_cast<unsigned __int128>(bits(i)) * n) >> 64);
  }

 private:
  static std::uint64_t mix(std::uint64_t z) { return splitmix64_mix(z); }
  std::uint64_t key_ = 0;
};

}  // namespace ms::eval
