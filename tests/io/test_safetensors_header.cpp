// Header validation, rule by rule, on bytes built in memory.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "mergesweep/core/error.hpp"
#include "mergesweep/io/safetensors_header.hpp"

namespace ms::io {
namespace {

std::vector<std::uint8_t> make_file(const std::string& header, std::size_t data_bytes, std::uint64_t len_override = 0) {
  std::vector<std::uint8_t> f(8 + header.size() + data_bytes, 0);
  const std::uint64_t n = len_override ? len_override : header.size();
  for (int i = 0; i < 8; ++i) f[i] = static_cast<std::uint8_t>(n >> (8 * i));
  std::memcpy(f.data() + 8, header.data(), header.size());
  return f;
}

SafetensorsHeader parse(const std::vector<std::uint8_t>& f) {
  return parse_safetensors_header(f.data(), f.size(), f.size(), "x.safetensors");
}

std::string error_of(const std::vector<std::uint8_t>& f) {
  try {
    parse(f);
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), "x.safetensors");
    return e.what();
  }
  return "<no error>";
}

TEST(SafetensorsHeader, ParsesValidHeaderSortedByOffset) {
  const auto f = make_file(
      R"({"b":{"dtype":"F32","shape":[2],"data_offsets":[2,10]},"__metadata__":{"k":"v"},)"
      R"("a":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]}})",
      10);
  const auto h = parse(f);
  ASSERT_EQ(h.tensors.size(), 2u);
  EXPECT_EQ(h.tensors[0].name, "a");
  EXPECT_EQ(h.tensors[1].name, "b");
  EXPECT_EQ(h.tensors[1].dtype, DType::F32);
  EXPECT_EQ(h.metadata.at("k"), "v");
  ASSERT_NE(h.find("b"), nullptr);
  EXPECT_EQ(h.find("b")->numel(), 2);
  EXPECT_EQ(h.find("zz"), nullptr);
  EXPECT_EQ(h.data_bytes(), 10u);
}

TEST(SafetensorsHeader, AcceptsEmptyAndZeroSizedTensors) {
  EXPECT_TRUE(parse(make_file("{}", 0)).tensors.empty());
  const auto h = parse(make_file(R"({"e":{"dtype":"F32","shape":[0,5],"data_offsets":[0,0]},)"
                                 R"("s":{"dtype":"F64","shape":[],"data_offsets":[0,8]}})",
                                 8));
  EXPECT_EQ(h.tensors.size(), 2u);
  EXPECT_EQ(h.find("s")->numel(), 1);
}

struct BadCase {
  const char* label;
  std::string header;
  std::size_t data;
  std::uint64_t len_override;
  const char* expect;
};

class SafetensorsHeaderBad : public ::testing::TestWithParam<BadCase> {};

TEST_P(SafetensorsHeaderBad, IsRejectedWithAClearMessage) {
  const auto& c = GetParam();
  const std::string msg = error_of(make_file(c.header, c.data, c.len_override));
  EXPECT_NE(msg.find(c.expect), std::string::npos) << c.label << ": " << msg;
}

const std::string T = R"("dtype":"F32","shape":[2],"data_offsets":)";

INSTANTIATE_TEST_SUITE_P(
    Rules, SafetensorsHeaderBad,
    ::testing::Values(
        BadCase{"huge_len", "{}", 0, 1ull << 40, "exceeds the limit"},
        BadCase{"len_past_eof", "{}", 0, 4096, "runs past the end of the file"},
        BadCase{"not_object", "[1]", 0, 0, "starting with '{'"},
        BadCase{"bad_json", "{\"a\":", 0, 0, "invalid JSON"},
        BadCase{"bad_utf8", "{\"\xff\":1}", 0, 0, "not valid UTF-8"},
        BadCase{"overlong_utf8", "{\"\xc0\xaf\":1}", 0, 0, "not valid UTF-8"},
        BadCase{"entry_not_object", R"({"a":3})", 0, 0, "tensor entry must be an object"},
        BadCase{"unknown_dtype", R"({"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}})", 16, 0, "unknown dtype 'F128'"},
        BadCase{"negative_dim", R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4, 0, "negative"},
        BadCase{"float_dim", R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4, 0, "non-negative integer"},
        BadCase{"overflow", R"({"a":{"dtype":"F32","shape":[4611686018427387904,8],"data_offsets":[0,4]}})", 4, 0, "overflows"},
        BadCase{"size_mismatch", "{\"a\":{" + T + "[0,12]}}", 12, 0, "needs 8 bytes"},
        BadCase{"reversed", "{\"a\":{" + T + "[8,0]}}", 8, 0, "end before begin"},
        BadCase{"past_data", "{\"a\":{" + T + "[0,8]}}", 4, 0, "truncated"},
        BadCase{"overlap", "{\"a\":{" + T + "[0,8]},\"b\":{" + T + "[4,12]}}", 12, 0, "overlaps"},
        BadCase{"hole", "{\"a\":{" + T + "[4,12]}}", 12, 0, "hole"},
        BadCase{"trailing", "{\"a\":{" + T + "[0,8]}}", 9, 0, "trailing bytes"},
        BadCase{"duplicate", "{\"a\":{" + T + "[0,8]},\"a\":{" + T + "[8,16]}}", 16, 0, "duplicate key 'a'"},
        BadCase{"dup_meta", R"({"__metadata__":{"k":"1","k":"2"}})", 0, 0, "duplicate key 'k'"},
        BadCase{"meta_value", R"({"__metadata__":{"k":1}})", 0, 0, "must be strings"},
        BadCase{"meta_type", R"({"__metadata__":"x"})", 0, 0, "must be an object"},
        BadCase{"missing_field", R"({"a":{"dtype":"F32","shape":[2]}})", 0, 0, "missing field 'data_offsets'"},
        BadCase{"unknown_field", "{\"a\":{" + T + "[0,8],\"extra\":1}}", 8, 0, "unknown field 'extra'"},
        BadCase{"offsets_arity", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8, 0, "must be [begin, end]"}),
    [](const auto& case_info) { return std::string(case_info.param.label); });

TEST(SafetensorsHeader, RejectsFilesShorterThanTheLengthPrefix) {
  std::vector<std::uint8_t> f(5, 0);
  try {
    parse_safetensors_header(f.data(), f.size(), f.size(), "x.safetensors");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("too short"), std::string::npos);
  }
}

TEST(SafetensorsHeader, Utf8Validator) {
  EXPECT_EQ(find_invalid_utf8("plain ascii"), std::string::npos);
  EXPECT_EQ(find_invalid_utf8("\xc3\xbc\xe2\x82\xac\xf0\x9f\x98\x80"), std::string::npos);  // ü € 😀
  EXPECT_EQ(find_invalid_utf8("ab\xed\xa0\x80"), 2u);   // surrogate
  EXPECT_EQ(find_invalid_utf8("abc\xe2\x82"), 3u);      // truncated sequence
}

}  // namespace
}  // namespace ms::io
