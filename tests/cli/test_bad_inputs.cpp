// The bad-input corpus (tests/bad-inputs/cases.json, made by make_bad_inputs.py): every malformed
// input must end in the documented exit status with a message that names the problem, never a
// crash, and must leave no half-written output.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/test_util.hpp"

namespace ms {
namespace {

struct Case {
  std::string name, args;
  int exit_code;
  std::vector<std::string> expect, absent;
};

// cases.json plus one cases-<module>.json per later module (each made by its own script).
std::vector<Case> load_cases() {
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(test::source_path("tests/bad-inputs"))) {
    const auto name = e.path().filename().string();
    if (name.rfind("cases", 0) == 0 && e.path().extension() == ".json") files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  std::vector<Case> out;
  for (const auto& f : files) {
    const auto j = nlohmann::json::parse(test::read_file(f));
    for (const auto& c : j["cases"]) {
      out.push_back({c["name"], c["args"], c["exit"], c["expect"].get<std::vector<std::string>>(),
                     c["absent"].get<std::vector<std::string>>()});
    }
  }
  return out;
}

std::string substitute(std::string s, const std::string& tmp) {
  for (std::size_t p; (p = s.find("{tmp}")) != std::string::npos;) s.replace(p, 5, tmp);
  return s;
}

class BadInput : public ::testing::TestWithParam<Case> {};

TEST_P(BadInput, FailsCleanlyWithAMessageNamingTheProblem) {
  const Case& c = GetParam();
  test::TempDir tmp;
  const auto r = test::run_cli(substitute(c.args, tmp.path()), test::source_path("tests/bad-inputs"));
  EXPECT_EQ(r.signal, 0) << "crashed: " << r.err;
  EXPECT_EQ(r.exit_code, c.exit_code) << r.err;
  EXPECT_EQ(r.err.rfind("mergesweep: error: ", 0), 0u) << r.err;
  for (const auto& e : c.expect) EXPECT_NE(r.err.find(e), std::string::npos) << "missing '" << e << "' in: " << r.err;
  for (const auto& a : c.absent) EXPECT_FALSE(std::filesystem::exists(substitute(a, tmp.path()))) << a;
  // No temporary leftovers next to outputs either.
  for (const auto& e : std::filesystem::directory_iterator(tmp.path())) ADD_FAILURE() << "left behind: " << e.path();
}

INSTANTIATE_TEST_SUITE_P(Corpus, BadInput, ::testing::ValuesIn(load_cases()),
                         [](const auto& p) { return p.param.name; });

TEST(BadInputCorpus, HasAtLeastTwentyCases) { EXPECT_GE(load_cases().size(), 20u); }

}  // namespace
}  // namespace ms
