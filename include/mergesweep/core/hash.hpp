// The project's non-cryptographic hashes, in one place: config ids, plan hashes, DARE keep-masks,
// subset draws and the counter-based random streams are all made from these. Their values are part
// of every archive's identity (an id or a mask that changed would make a resumed sweep redo or mix
// work), so they are pinned by a test (tests/merge/test_registry.cpp, "HashesArePinned").
// Checkpoint files get sha256 (core/sha256.hpp); models get XXH64 fingerprints (core/fingerprint.hpp).
#pragma once

#include <cstdint>
#include <string_view>

namespace ms {

// splitmix64's increment (2^64 / golden ratio).
inline constexpr std::uint64_t kGoldenGamma = 0x9E3779B97F4A7C15ull;
// FNV-1a's standard 64-bit offset basis.
inline constexpr std::uint64_t kFnv1aOffset = 0xCBF29CE484222325ull;

// splitmix64's output function: a bijection that spreads every input bit over the output.
inline std::uint64_t splitmix64_mix(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// One splitmix64 step from state x: x advanced by the golden gamma, then mixed.
inline std::uint64_t mix64(std::uint64_t x) { return splitmix64_mix(x + kGoldenGamma); }

// FNV-1a over bytes, from `basis`.
inline std::uint64_t fnv1a64(std::string_view bytes, std::uint64_t basis = kFnv1aOffset) {
  std::uint64_t h = basis;
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001B3ull;
  return h;
}

// FNV-1a then mix64: the stable hash of a text (config ids, tensor names in DARE mask keys).
inline std::uint64_t stable_hash(std::string_view text) { return mix64(fnv1a64(text)); }

}  // namespace ms
