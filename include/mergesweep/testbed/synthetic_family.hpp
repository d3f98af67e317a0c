// A synthetic model family: a randomly initialised Llama-architecture base and fine-tunes that are
// the base plus structured deltas (dense, sparse, low-rank, sign-conflicting). Untrained, so it
// says nothing about accuracy; it exercises I/O, sharding and merge math at any size, fast and
// deterministically (same seed, same bytes). The trained testbed lives beside it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ms::testbed {

struct SyntheticFamilyOptions {
  std::string preset = "tiny";         // see synthetic_presets()
  int checkpoints = 4;                 // fine-tunes besides the base
  std::uint64_t seed = 0;
  std::string dtype = "bfloat16";      // bfloat16 | float16 | float32
  std::uint64_t max_shard_bytes = 5'000'000'000ull;
};

struct SyntheticPreset {
  std::string name;
  std::int64_t layers, hidden, ffn, heads, kv_heads, vocab;
  bool tied;
};
const std::vector<SyntheticPreset>& synthetic_presets();

// Writes OUT/base and OUT/ft-00 .. ft-NN as HF folders. Throws ms::Error on bad options or I/O.
void write_synthetic_family(const std::string& out_dir, const SyntheticFamilyOptions& options);

}  // namespace ms::testbed
