// XXH64 against the reference implementation (values from Python's xxhash 4.1, which wraps
// xxHash's C code), whole and fed in parts; the model fingerprint's definition, order-free.
#include <gtest/gtest.h>

#include <ctime>
#include <cstdio>
#include <vector>

#include "mergesweep/core/error.hpp"
#include "mergesweep/core/fingerprint.hpp"

namespace ms {
namespace {

std::vector<unsigned char> sample_bytes(std::size_t n) {
  std::vector<unsigned char> d(n);
  for (std::size_t i = 0; i < n; ++i) d[i] = static_cast<unsigned char>((i * 131 + 7) % 256);
  return d;
}

// xxhash.xxh64(bytes((i*131+7)%256 for i in range(1000))[:n]).intdigest()
const std::vector<std::pair<std::size_t, std::uint64_t>> kReference = {
    {0, 0xef46db3751d8e999ULL},  {1, 0xa96c7f0ce858bbb7ULL},  {3, 0xbed43740ee6332bbULL},
    {4, 0xfa212ae44b3bb23dULL},  {7, 0x2744460dd675d2c0ULL},  {8, 0x994b676b71ce94ddULL},
    {12, 0xb92f588ce720786eULL}, {31, 0x6711d55e306b5d8fULL}, {32, 0x07f7b8e3bc5d6e25ULL},
    {33, 0x09f85eeb4e1cbe9fULL}, {63, 0xb7c9968c066cb6a5ULL}, {64, 0x50d4159a0411632eULL},
    {100, 0x9ddada11d3dc2d8fULL}, {1000, 0x0bf0bdbcc82eb373ULL}};

TEST(Xxh64, MatchesTheReferenceForEveryTailLength) {
  const auto d = sample_bytes(1000);
  for (const auto& [n, want] : kReference) EXPECT_EQ(xxh64(d.data(), n), want) << "length " << n;
  EXPECT_EQ(xxh64(d.data(), 100, 12345), 0x21fc897b6959f33aULL);
}

TEST(Xxh64, InPartsEqualsWhole) {
  const auto d = sample_bytes(1000);
  for (std::size_t step : {1u, 5u, 31u, 32u, 33u, 97u}) {
    Xxh64 h;
    for (std::size_t at = 0; at < d.size(); at += step) h.update(d.data() + at, std::min(step, d.size() - at));
    EXPECT_EQ(h.digest(), 0x0bf0bdbcc82eb373ULL) << "step " << step;
  }
}

TEST(ModelFingerprint, IsXxh64OfNamesAndDigestsInNameOrder) {
  const auto d = sample_bytes(100);
  const std::uint64_t a = xxh64(d.data(), 64), b = xxh64(d.data() + 64, 36);
  // Python: xxh64(b'a.weight\0' + pack('<Q', a) + b'b.bias\0' + pack('<Q', b))
  EXPECT_EQ(model_fingerprint({{"b.bias", b}, {"a.weight", a}}), 0xec30c11c3401d24aULL);
  EXPECT_EQ(model_fingerprint({{"a.weight", a}, {"b.bias", b}}), 0xec30c11c3401d24aULL);
  EXPECT_NE(model_fingerprint({{"a.weight", b}, {"b.bias", a}}), 0xec30c11c3401d24aULL);
  EXPECT_THROW(model_fingerprint({{"a", a}, {"a", a}}), Error);
  EXPECT_EQ(fingerprint_hex(0x0bf0bdbcc82eb373ULL), "0bf0bdbcc82eb373");
}

// Not a pass/fail check: the speed the sweep pays per byte of merged model (printed), in CPU
// time so that a loaded machine still shows the per-core rate.
TEST(Xxh64, Throughput) {
  const auto d = sample_bytes(64u << 20);
  const std::clock_t t0 = std::clock();
  const std::uint64_t h = xxh64(d.data(), d.size());
  const double s = static_cast<double>(std::clock() - t0) / CLOCKS_PER_SEC;
  std::printf("xxh64: %.2f GB/s per core over 64 MiB (digest %016llx)\n", static_cast<double>(d.size()) / s / 1e9,
              static_cast<unsigned long long>(h));
}

}  // namespace
}  // namespace ms
