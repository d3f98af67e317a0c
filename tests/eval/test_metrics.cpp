// TaskTally: acc / acc_norm / acc_bytes / exact_match and lm-eval's standard error, on cases
// worked out by hand and recomputed here from per-item 0/1 values.
#include <gtest/gtest.h>

#include <cmath>

#include "mergesweep/eval/scoring.hpp"

namespace ms::eval {
namespace {

TaskItem item(std::vector<std::pair<std::int64_t, std::int64_t>> chars_bytes, int gold) {
  TaskItem it;
  it.context = {1};
  for (auto [c, b] : chars_bytes) it.choices.push_back({{2}, c, b, {}});
  it.gold = gold;
  return it;
}

// lm-eval's mean_stderr: sample standard deviation (ddof 1) over items / sqrt(n), by its loops.
double reference_stderr(const std::vector<double>& x) {
  double mu = 0;
  for (double v : x) mu += v;
  mu /= static_cast<double>(x.size());
  double ss = 0;
  for (double v : x) ss += (v - mu) * (v - mu);
  return std::sqrt(ss / static_cast<double>(x.size() - 1)) / std::sqrt(static_cast<double>(x.size()));
}

const Metric& find(const std::vector<Metric>& m, const std::string& name) {
  for (const auto& x : m)
    if (x.name == name) return x;
  throw std::runtime_error("no metric " + name);
}

TEST(TaskTally, EachMetricOnHandCheckedItems) {
  std::vector<TaskItem> items;
  std::vector<ItemScore> scores;
  // 0: raw argmax 0 (-1 > -2), per char: -1/1 = -1 < -2/10 = -0.2 -> 1; per byte -1/1 vs -2/40 -> 1.
  items.push_back(item({{1, 1}, {10, 40}}, 1));
  scores.push_back({{-1.0, -2.0}, {1, 0}});
  // 1: raw argmax 1; per char -3/3 = -1 vs -2/1 = -2 -> 0; per byte -3/3 vs -2/4 = -0.5 -> 1.
  items.push_back(item({{3, 3}, {1, 4}}, 0));
  scores.push_back({{-3.0, -2.0}, {1, 1}});
  // 2: a tie: numpy's argmax takes the first maximum (0), gold 0; greedy of gold false.
  items.push_back(item({{2, 2}, {2, 2}, {1, 1}}, 0));
  scores.push_back({{-4.0, -4.0, -9.0}, {0, 1, 0}});
  // Expected per item (acc, acc_norm, acc_bytes, exact_match):
  const std::vector<std::vector<double>> expect = {{0, 1, 1, 0}, {0, 1, 0, 1}, {1, 1, 1, 0}};
  TaskTally t;
  for (std::size_t i = 0; i < items.size(); ++i) t.add(items[i], scores[i]);
  EXPECT_EQ(t.n, 3);
  const auto m = t.metrics();
  const char* names[] = {"acc", "acc_norm", "acc_bytes", "exact_match"};
  for (int k = 0; k < 4; ++k) {
    std::vector<double> col;
    for (const auto& e : expect) col.push_back(e[k]);
    double mean = 0;
    for (double v : col) mean += v;
    mean /= 3;
    EXPECT_DOUBLE_EQ(find(m, names[k]).value, mean) << names[k];
    if (mean == 1.0) {
      EXPECT_EQ(find(m, names[k]).stderr_, 0.0);
    } else {
      EXPECT_NEAR(find(m, names[k]).stderr_, reference_stderr(col), 1e-15) << names[k];
    }
  }
  // acc: 1/3, stderr = sqrt((2*(1/3)^2 + (2/3)^2) / 2) / sqrt(3) = sqrt(1/3)/sqrt(3) = 1/3.
  EXPECT_NEAR(find(m, "acc").stderr_, 1.0 / 3.0, 1e-15);
}

TEST(TaskTally, MergeOfPartsEqualsWhole) {
  TaskTally whole, a, b;
  for (int i = 0; i < 37; ++i) {
    const TaskItem it = item({{1 + i % 5, 2 + i % 5}, {3, 3}, {2, 7}}, i % 3);
    const ItemScore s{{-1.0 - (i % 4), -2.0 + 0.1 * (i % 7), -3.0 + 0.5 * (i % 3)},
                      {static_cast<std::uint8_t>(i % 2), 1, static_cast<std::uint8_t>(i % 3 == 0)}};
    whole.add(it, s);
    (i % 3 == 1 ? a : b).add(it, s);
  }
  a.merge(b);
  const auto x = whole.metrics(), y = a.metrics();
  ASSERT_EQ(x.size(), y.size());
  for (std::size_t k = 0; k < x.size(); ++k) {
    EXPECT_EQ(x[k].value, y[k].value);
    EXPECT_EQ(x[k].stderr_, y[k].stderr_);
  }
}

TEST(TaskTally, ManyItemsStderrMatchesItemLoop) {
  TaskTally t;
  std::vector<double> acc;
  for (int i = 0; i < 1000; ++i) {
    const int gold = (i * 7) % 4;
    const int best = (i * 13) % 4;  // argmax choice
    std::vector<double> ll(4, -5.0);
    ll[best] = -1.0;
    t.add(item({{1, 1}, {1, 1}, {1, 1}, {1, 1}}, gold), {ll, {0, 0, 0, 0}});
    acc.push_back(best == gold ? 1.0 : 0.0);
  }
  const auto m = t.metrics();
  EXPECT_NEAR(find(m, "acc").stderr_, reference_stderr(acc), 1e-12);
  EXPECT_EQ(find(m, "exact_match").value, 0.0);
}

TEST(TaskTally, SingleItemHasNoStderr) {
  TaskTally t;
  t.add(item({{1, 1}, {1, 1}}, 0), {{-1.0, -2.0}, {1, 0}});
  EXPECT_EQ(t.metrics()[0].value, 1.0);
  EXPECT_TRUE(std::isnan(t.metrics()[0].stderr_));
}

}  // namespace
}  // namespace ms::eval
