#include <gtest/gtest.h>

#include "mergesweep/core/error.hpp"
#include "mergesweep/core/sha256.hpp"
#include "mergesweep/core/units.hpp"

namespace ms {
namespace {

TEST(Units, ParsesDecimalAndBinarySizesLikeTransformers) {
  EXPECT_EQ(parse_byte_size("5GB", "x"), 5'000'000'000ull);
  EXPECT_EQ(parse_byte_size("500MB", "x"), 500'000'000ull);
  EXPECT_EQ(parse_byte_size("2GiB", "x"), 2ull << 30);
  EXPECT_EQ(parse_byte_size("1.5kb", "x"), 1500ull);
  EXPECT_EQ(parse_byte_size("123", "x"), 123ull);
}

TEST(Units, RejectsMalformedSizesNamingTheField) {
  for (const char* bad : {"", "GB", "5XB", "-1GB", "0", ".", "1e9"}) {
    try {
      parse_byte_size(bad, "--max-shard-size");
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.field(), "--max-shard-size") << bad;
    }
  }
}

TEST(Units, FormatsHumanSizes) {
  EXPECT_EQ(format_bytes(999), "999 B");
  EXPECT_EQ(format_bytes(1'500'000), "1.50 MB");
  EXPECT_EQ(format_count(90'432), "90.43K");
}

TEST(Sha256, MatchesKnownDigest) {
  EXPECT_EQ(sha256_hex("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace ms
