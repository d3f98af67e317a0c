// XXH64 as specified by xxHash (https://github.com/Cyan4973/xxHash, doc/xxhash_spec.md): four
// lanes over 32-byte stripes, then the tail in 8-, 4- and 1-byte steps, then the avalanche.
#include "mergesweep/core/fingerprint.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "mergesweep/core/error.hpp"

namespace ms {
namespace {

constexpr std::uint64_t kP1 = 0x9E3779B185EBCA87ULL, kP2 = 0xC2B2AE3D27D4EB4FULL, kP3 = 0x165667B19E3779F9ULL,
                        kP4 = 0x85EBCA77C2B2AE63ULL, kP5 = 0x27D4EB2F165667C5ULL;

std::uint64_t rotl(std::uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
// Little-endian loads (the spec reads input as little-endian words; x86 and ARM Linux are).
std::uint64_t load64(const unsigned char* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
std::uint32_t load32(const unsigned char* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
std::uint64_t round64(std::uint64_t acc, std::uint64_t input) { return rotl(acc + input * kP2, 31) * kP1; }
std::uint64_t merge_round(std::uint64_t h, std::uint64_t v) { return (h ^ round64(0, v)) * kP1 + kP4; }

void stripe(std::uint64_t* acc, const unsigned char* p) {
  for (int i = 0; i < 4; ++i) acc[i] = round64(acc[i], load64(p + 8 * i));
}

}  // namespace

Xxh64::Xxh64(std::uint64_t seed) : acc_{seed + kP1 + kP2, seed + kP2, seed, seed - kP1}, seed_(seed) {}

void Xxh64::update(const void* data, std::size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  total_ += n;
  if (buffered_ > 0) {
    const std::size_t take = std::min(n, 32 - buffered_);
    std::memcpy(buf_ + buffered_, p, take);
    buffered_ += take;
    p += take;
    n -= take;
    if (buffered_ < 32) return;
    stripe(acc_, buf_);
    buffered_ = 0;
  }
  for (; n >= 32; p += 32, n -= 32) stripe(acc_, p);
  std::memcpy(buf_, p, n);
  buffered_ = n;
}

std::uint64_t Xxh64::digest() const {
  std::uint64_t h;
  if (total_ >= 32) {
    h = rotl(acc_[0], 1) + rotl(acc_[1], 7) + rotl(acc_[2], 12) + rotl(acc_[3], 18);
    for (std::uint64_t v : acc_) h = merge_round(h, v);
  } else {
    h = seed_ + kP5;
  }
  h += total_;
  const unsigned char* p = buf_;
  std::size_t n = buffered_;
  for (; n >= 8; p += 8, n -= 8) h = rotl(h ^ round64(0, load64(p)), 27) * kP1 + kP4;
  if (n >= 4) {
    h = rotl(h ^ (static_cast<std::uint64_t>(load32(p)) * kP1), 23) * kP2 + kP3;
    p += 4;
    n -= 4;
  }
  for (; n > 0; ++p, --n) h = rotl(h ^ (*p * kP5), 11) * kP1;
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

std::uint64_t xxh64(const void* data, std::size_t n, std::uint64_t seed) {
  Xxh64 h(seed);
  h.update(data, n);
  return h.digest();
}

std::uint64_t model_fingerprint(std::vector<std::pair<std::string, std::uint64_t>> digests) {
  std::sort(digests.begin(), digests.end());
  Xxh64 h;
  for (std::size_t i = 0; i < digests.size(); ++i) {
    const auto& [name, d] = digests[i];
    if (i > 0 && digests[i - 1].first == name) fail("", name, "tensor named twice in a model fingerprint");
    unsigned char le[8];
    for (int b = 0; b < 8; ++b) le[b] = static_cast<unsigned char>(d >> (8 * b));
    h.update(name.data(), name.size());
    h.update("", 1);  // the NUL after the name
    h.update(le, 8);
  }
  return h.digest();
}

std::string fingerprint_hex(std::uint64_t f) {
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(f));
  return b;
}

}  // namespace ms
