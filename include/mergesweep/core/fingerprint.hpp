// Fingerprints of models by their bytes: xxHash's XXH64 (seed 0), which runs at memory speed, so a
// sweep can fingerprint every config's merged model for a small fraction of the merge's cost.
// Not cryptographic (checkpoint files get sha256, core/sha256.hpp): it answers "are these the
// same bytes?", not "did someone forge them?". The model fingerprint is defined over logical
// tensors in name order, never over shards, so it does not depend on how a model was split
// across ranks or files (docs/archive.md, "Fingerprint").
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ms {

// XXH64 of a byte string, in parts: update() any number of times, then digest() (which does not
// change the state). Equal to xxhash.xxh64(data, seed).intdigest() in Python.
class Xxh64 {
 public:
  explicit Xxh64(std::uint64_t seed = 0);
  void update(const void* data, std::size_t n);
  std::uint64_t digest() const;

 private:
  std::uint64_t acc_[4];
  std::uint64_t seed_;
  std::uint64_t total_ = 0;
  unsigned char buf_[32];
  std::size_t buffered_ = 0;
};
std::uint64_t xxh64(const void* data, std::size_t n, std::uint64_t seed = 0);

// A model's fingerprint from its tensors' digests (XXH64 of each tensor's bytes, row-major,
// little-endian, in the dtype it is held in): XXH64 over, for each tensor in name order, the
// name's bytes, one NUL byte and the digest as 8 little-endian bytes. `digests` in any order;
// names must be unique.
std::uint64_t model_fingerprint(std::vector<std::pair<std::string, std::uint64_t>> digests);

std::string fingerprint_hex(std::uint64_t f);  // 16 lower-case hex digits

}  // namespace ms
