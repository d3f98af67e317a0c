// The one YAML helper: every error reads "<file>: <key>: line N: expected X, got Y".
#include <gtest/gtest.h>

#include "common/test_util.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/io/yaml_fields.hpp"

namespace ms::io {
namespace {

using ms::test::error_of;

TEST(YamlFields, TypeErrorsNameFileKeyLineExpectedAndGot) {
  const YamlFields y("s.yaml");
  const YAML::Node doc = y.load_mapping("a: 1\nb: x\nc: [1, 2]\n", "a mapping");
  EXPECT_EQ(y.integer(doc["a"], "a", 0, 5), 1);
  EXPECT_EQ(error_of([&] { y.integer(doc["b"], "b", 0, 5); }), "s.yaml: b: line 2: expected an integer in [0, 5], got 'x'");
  EXPECT_EQ(error_of([&] { y.scalar(doc["c"], "c"); }), "s.yaml: c: line 3: expected a single value, got a list");
  EXPECT_EQ(error_of([&] { y.number(doc["b"], "b", 0, 1); }), "s.yaml: b: line 2: expected a number in [0, 1], got 'x'");
  EXPECT_EQ(y.int_list(doc["c"], "c", 0, 9), (std::vector<int>{1, 2}));
}

TEST(YamlFields, UnknownKeysListWhatIsAllowed) {
  const YamlFields y("s.yaml");
  const YAML::Node doc = y.load_mapping("sub: {x: 1, y: 2}\n", "a mapping");
  EXPECT_EQ(error_of([&] { y.check_keys(doc["sub"], "sub", {"x"}); }),
            "s.yaml: sub.y: line 1: unknown key 'y' (expected one of: x)");
  EXPECT_EQ(error_of([&] { y.check_keys(doc, "", {"top"}); }),
            "s.yaml: sub: line 1: unknown key 'sub' (expected one of: top)");
}

TEST(YamlFields, SyntaxErrorsAndNonMappingsNameTheLine) {
  const YamlFields y("s.yaml");
  EXPECT_NE(error_of([&] { y.load_mapping("a: [1, 2\n", "a mapping"); }).find("s.yaml: line 2: invalid YAML"),
            std::string::npos);
  EXPECT_EQ(error_of([&] { y.load_mapping("- 1\n", "a spec"); }), "s.yaml: expected a spec, got a list");
}

}  // namespace
}  // namespace ms::io
