// A small portable random source for the testbed's data. std::uniform_int_distribution and friends
// differ between standard libraries, so every draw here is defined by this file alone: SplitMix64
// steps, unbiased bounded integers by rejection. Each stream is a pure function of (seed, purpose).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "mergesweep/core/hash.hpp"

namespace ms::testbed {

class Rng {
 public:
  explicit Rng(std::uint64_t state) : s_(state) {}
  // A stream for (seed, purpose, index): the purpose string and index are hashed into the state.
  static Rng for_purpose(std::uint64_t seed, const std::string& purpose, std::uint64_t index = 0) {
    Rng r(seed * kGoldenGamma ^ fnv1a64(purpose) ^ (index * 0xD1B54A32D192ED03ull));
    r.next();
    return r;
  }
  std::uint64_t next() { return splitmix64_mix(s_ += kGoldenGamma); }
  // Uniform in [0, n), n > 0, without modulo bias.
  std::uint64_t below(std::uint64_t n) {
    const std::uint64_t limit = ~0ull - (~0ull % n);
    std::uint64_t x;
    do x = next(); while (x >= limit);
    return x % n;
  }
  // Uniform in [lo, hi].
  int range(int lo, int hi) { return lo + static_cast<int>(below(static_cast<std::uint64_t>(std::int64_t{hi} - lo + 1))); }
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
  template <class T>
  void shuffle(std::vector<T>& v) {
    for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(i)]);
  }

 private:
  std::uint64_t s_;
};

}  // namespace ms::testbed
