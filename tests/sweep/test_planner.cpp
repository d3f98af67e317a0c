// Spec parsing/validation and the planner: subsets are a pure function of (seed, n, sample),
// distinct, capped at C(N, n), shared by every method point; baselines once; stable config ids.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "mergesweep/core/error.hpp"
#include "mergesweep/sweep/planner.hpp"
#include "mergesweep/sweep/spec.hpp"

namespace ms::sweep {
namespace {

const char* kSpec = R"(name: t
base: m/base
checkpoints: [m/a, m/b, m/c, m/d, m/e, m/f]
subsets: {sizes: [2, 3, 6], samples: 4, seed: 7}
methods:
  - {method: task_arithmetic, lambda: [0.5, 1.0]}
  - {method: ties, density: 0.1}
output: out.h5
)";

std::string error_of(const std::string& text) {
  try {
    parse_spec(text, "spec.yaml");
  } catch (const ms::Error& e) {
    return e.what();
  }
  return "";
}

TEST(Subsets, DistinctSortedAndCapped) {
  for (int n = 1; n <= 6; ++n) {
    const auto s = draw_subsets(6, n, 10, 42);
    EXPECT_EQ(s.size(), std::min<std::size_t>(10, static_cast<std::size_t>(binomial(6, n)))) << n;
    std::set<std::vector<int>> seen(s.begin(), s.end());
    EXPECT_EQ(seen.size(), s.size());
    for (const auto& sub : s) {
      EXPECT_EQ(static_cast<int>(sub.size()), n);
      EXPECT_TRUE(std::is_sorted(sub.begin(), sub.end()));
      EXPECT_GE(sub.front(), 1);
      EXPECT_LE(sub.back(), 6);
    }
  }
  EXPECT_EQ(draw_subsets(12, 12, 15, 1).size(), 1u);  // n = N gives one subset
}

TEST(Subsets, PureFunctionOfSeedSizeAndSampleIndex) {
  const auto a = draw_subsets(12, 4, 15, 1234);
  EXPECT_EQ(a, draw_subsets(12, 4, 15, 1234));
  const auto more = draw_subsets(12, 4, 30, 1234);  // more samples keep the first ones
  EXPECT_TRUE(std::equal(a.begin(), a.end(), more.begin()));
  EXPECT_NE(a, draw_subsets(12, 4, 15, 1235));
}

TEST(Subsets, CoverTheCheckpointsRoughlyEvenly) {
  std::vector<int> count(13, 0);
  for (const auto& s : draw_subsets(12, 3, 200, 9))
    for (int k : s) ++count[k];
  for (int k = 1; k <= 12; ++k) EXPECT_GT(count[k], 25) << k;  // 600 draws, 50 expected each
}

TEST(Plan, BaselinesOncePairedSubsetsStableIds) {
  const SweepSpec spec = parse_spec(kSpec, "spec.yaml");
  ASSERT_EQ(spec.methods.size(), 3u);  // TA x 2 lambdas + TIES
  const Plan plan = make_plan(spec);
  EXPECT_EQ(plan.num_baselines, 7u);
  // sizes 2 and 3: 4 samples each; size 6: C(6,6) = 1.
  EXPECT_EQ(plan.configs.size(), 7u + 3u * (4 + 4 + 1));
  std::set<std::uint64_t> ids;
  std::map<std::string, std::set<std::vector<int>>> subsets_by_point;
  for (const auto& c : plan.configs) {
    EXPECT_TRUE(ids.insert(c.id).second) << "duplicate id";
    if (c.kind == ConfigKind::Merge)
      subsets_by_point[c.method() + c.params()].insert(c.members);
  }
  // Paired comparison: every method point sees the same subsets.
  ASSERT_EQ(subsets_by_point.size(), 3u);
  for (const auto& [k, v] : subsets_by_point) EXPECT_EQ(v, subsets_by_point.begin()->second) << k;
  // The same spec gives the same ids; a different lambda gives different ones.
  const Plan again = make_plan(parse_spec(kSpec, "other/place.yaml"));
  for (std::size_t i = 0; i < plan.configs.size(); ++i) EXPECT_EQ(plan.configs[i].id, again.configs[i].id);
  // Extending a grid keeps the old ids (resume runs only the new points).
  std::string extended = kSpec;
  extended.replace(extended.find("[0.5, 1.0]"), 10, "[0.5, 1.0, 2.0]");
  const Plan ext = make_plan(parse_spec(extended, "spec.yaml"));
  std::set<std::uint64_t> ext_ids;
  for (const auto& c : ext.configs) ext_ids.insert(c.id);
  for (auto id : ids) EXPECT_TRUE(ext_ids.count(id));
  EXPECT_EQ(ext.configs.size(), plan.configs.size() + 9);
}

TEST(Plan, TiesDensityGoesToEveryMember) {
  const SweepSpec spec = parse_spec(kSpec, "spec.yaml");
  const Plan plan = make_plan(spec);
  bool seen = false;
  for (const auto& c : plan.configs) {
    if (c.kind != ConfigKind::Merge || c.method() != "ties") continue;
    seen = true;
    for (const auto& m : c.request(spec).members) EXPECT_DOUBLE_EQ(m.density, 0.1);
  }
  EXPECT_TRUE(seen);
}

TEST(Spec, ErrorsNameTheFieldAndLine) {
  std::string s = kSpec;
  EXPECT_NE(error_of(std::string(kSpec) + "sizez: 3\n").find("unknown key 'sizez'"), std::string::npos);
  EXPECT_NE(error_of(std::string(kSpec) + "sizez: 3\n").find("line 9"), std::string::npos);
  s = kSpec;
  s.replace(s.find("[2, 3, 6]"), 9, "[2, 7]");
  EXPECT_NE(error_of(s).find("larger than the number of checkpoints (6)"), std::string::npos) << error_of(s);
  s = kSpec;
  s.replace(s.find("method: ties"), 12, "method: tiez");
  EXPECT_NE(error_of(s).find("unknown method 'tiez'"), std::string::npos);
  s = kSpec;
  s.replace(s.find("density: 0.1"), 12, "density: 1.5");
  EXPECT_NE(error_of(s).find("density"), std::string::npos);
  s = kSpec;
  s.replace(s.find("lambda: [0.5, 1.0]"), 18, "lambda: [0.5, abc]");
  EXPECT_NE(error_of(s).find("lambda"), std::string::npos) << error_of(s);
  s = kSpec;
  s.replace(s.find("  - {method: ties"), 0, "  - {method: slerp, t: 0.5}\n");
  EXPECT_NE(error_of(s).find("at most 1 model"), std::string::npos) << error_of(s);
  s = kSpec;
  s.replace(s.find("output: out.h5\n"), 15, "");
  EXPECT_NE(error_of(s).find("output"), std::string::npos);
  EXPECT_NE(error_of("[1, 2]").find("mapping"), std::string::npos);
  EXPECT_NE(error_of("a: [1, 2").find("invalid YAML"), std::string::npos);
}

TEST(Spec, PathsAreRelativeToTheSpecFolder) {
  const SweepSpec spec = parse_spec(kSpec, "/studies/x/spec.yaml");
  EXPECT_EQ(spec.base, "/studies/x/m/base");
  EXPECT_EQ(spec.checkpoints[2], "/studies/x/m/c");
  EXPECT_EQ(spec.output, "/studies/x/out.h5");
}

}  // namespace
}  // namespace ms::sweep

namespace ms::sweep {
namespace {
TEST(Spec, ListsOfMemberValuesExpandTheGrid) {
  std::string s = kSpec;
  s.replace(s.find("density: 0.1"), 12, "density: [0.1, 0.2]");
  const SweepSpec spec = parse_spec(s, "spec.yaml");
  ASSERT_EQ(spec.methods.size(), 4u);
  EXPECT_DOUBLE_EQ(spec.methods[2].density, 0.1);
  EXPECT_DOUBLE_EQ(spec.methods[3].density, 0.2);
}
}  // namespace
}  // namespace ms::sweep

namespace ms::sweep {
namespace {
TEST(Spec, ScheduleCommIsAutoMpiOrNccl) {
  EXPECT_EQ(parse_spec(kSpec, "spec.yaml").schedule.comm, "auto");
  for (const char* c : {"auto", "mpi", "nccl"})
    EXPECT_EQ(parse_spec(std::string(kSpec) + "schedule: {comm: " + c + "}\n", "spec.yaml").schedule.comm, c);
  const std::string e = error_of(std::string(kSpec) + "schedule: {comm: gloo}\n");
  EXPECT_NE(e.find("schedule.comm"), std::string::npos) << e;
  EXPECT_NE(e.find("must be auto, mpi or nccl, got 'gloo'"), std::string::npos) << e;
  EXPECT_NE(error_of(std::string(kSpec) + "schedule: {peer_timeout: 0}\n").find("schedule.peer_timeout"), std::string::npos);
}
}  // namespace
}  // namespace ms::sweep

namespace ms::sweep {
namespace {
// Checkpoints by name: the folder's name by default, `name:` in an entry {path, name}; names
// unique (a clash is refused with the fix), no commas; errors about a checkpoint name it.
TEST(Spec, CheckpointsHaveUniqueShortNames) {
  SweepSpec spec = parse_spec(kSpec, "/studies/x/spec.yaml");
  EXPECT_EQ(spec.checkpoint_names, (std::vector<std::string>{"a", "b", "c", "d", "e", "f"}));
  EXPECT_EQ(spec.checkpoint_field(2), "checkpoints[2] (c)");
  std::string s = kSpec;
  s.replace(s.find("[m/a, m/b,"), 10, "[{path: m/a, name: first}, m/other/b/,");
  spec = parse_spec(s, "/studies/x/spec.yaml");
  EXPECT_EQ(spec.checkpoints[0], "/studies/x/m/a");
  EXPECT_EQ(spec.checkpoint_names[0], "first");
  EXPECT_EQ(spec.checkpoint_names[1], "b") << "a trailing slash does not hide the folder's name";

  // Folder names that clash take their parent folders until they differ (run1/adapter,
  // run2/adapter); a name given in the spec never changes, and two given alike are refused.
  s = kSpec;
  s.replace(s.find("m/b,"), 4, "n/a,");
  spec = parse_spec(s, "/studies/x/spec.yaml");
  EXPECT_EQ(spec.checkpoint_names[0], "m/a");
  EXPECT_EQ(spec.checkpoint_names[1], "n/a");
  EXPECT_EQ(spec.checkpoint_names[2], "c") << "names that do not clash stay short";
  s = kSpec;
  s.replace(s.find("m/b,"), 4, "{path: m/b, name: a},");
  spec = parse_spec(s, "/studies/x/spec.yaml");
  EXPECT_EQ(spec.checkpoint_names[0], "m/a");
  EXPECT_EQ(spec.checkpoint_names[1], "a");
  s = kSpec;
  s.replace(s.find("[m/a, m/b,"), 10, "[{path: m/a, name: a}, {path: m/b, name: a},");
  const std::string clash = error_of(s);
  EXPECT_NE(clash.find("two checkpoints are named 'a' (checkpoints[0]: m/a, and checkpoints[1]: m/b)"), std::string::npos)
      << clash;
  EXPECT_NE(clash.find("{path: m/b, name: a-2}"), std::string::npos) << clash;
  s = kSpec;
  s.replace(s.find("m/b,"), 4, "{path: m/b, name: 'x,y'},");
  EXPECT_NE(error_of(s).find("may not contain commas"), std::string::npos) << error_of(s);
  s = kSpec;
  s.replace(s.find("m/b,"), 4, "{path: 'm/*', name: b},");
  EXPECT_NE(error_of(s).find("is a pattern"), std::string::npos) << error_of(s);
  s = kSpec;
  s.replace(s.find("m/b,"), 4, "{name: b},");
  EXPECT_NE(error_of(s).find("checkpoints[1].path"), std::string::npos) << error_of(s);
  s = kSpec;
  s.replace(s.find("m/b,"), 4, "{path: m/b, nam: b},");
  EXPECT_NE(error_of(s).find("unknown key 'nam'"), std::string::npos) << error_of(s);
}
}  // namespace
}  // namespace ms::sweep
