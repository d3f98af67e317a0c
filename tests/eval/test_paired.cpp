// eval/paired: the exact binomial tail against integer arithmetic, McNemar on hand-counted
// outcomes, numpy's percentile on hand-worked cases, and the bootstrap's draws: deterministic,
// the same items for every series, keyed by task alone.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "mergesweep/eval/paired.hpp"

namespace ms::eval {
namespace {

// P[Binom(n, 1/2) <= k] as an exact ratio of integers (n <= 100: C(n, i) fits 128 bits).
long double exact_half_cdf(int k, int n) {
  unsigned __int128 sum = 0, c = 1;  // c = C(n, i)
  for (int i = 0; i <= k; ++i) {
    sum += c;
    c = c * static_cast<unsigned __int128>(n - i) / static_cast<unsigned __int128>(i + 1);
  }
  return std::ldexp(static_cast<long double>(sum), -n);
}

TEST(Paired, BinomialTailIsTheExactRatio) {
  for (int n = 0; n <= 100; ++n)
    for (int k = 0; k <= n; ++k)
      ASSERT_NEAR(binomial_half_cdf(k, n), static_cast<double>(exact_half_cdf(k, n)), 1e-15) << k << " of " << n;
  // Far past the range of 2^-n in double: the terms are kept in range, the tail is symmetric.
  // n = 6000: P[X <= 2999] = P[X >= 3001], so 2 P[X <= 2999] + P[X = 3000] = 1.
  const double below = binomial_half_cdf(2999, 6000), middle = binomial_half_cdf(3000, 6000) - below;
  EXPECT_NEAR(2 * below + middle, 1.0, 1e-13);
  // Pascal's rule, P_n[X <= k] = (P_n-1[X <= k] + P_n-1[X <= k-1]) / 2, far from the tail's underflow.
  for (const std::int64_t k : {2800, 2900, 2990}) {
    const double want = (binomial_half_cdf(k, 5999) + binomial_half_cdf(k - 1, 5999)) / 2;
    EXPECT_NEAR(binomial_half_cdf(k, 6000), want, 1e-14 * want) << k;
    EXPECT_GT(want, 0.0);
  }
}

TEST(Paired, McNemarCountsTheDiscordantItems) {
  // a right alone on items 0 and 4, b right alone on item 2: p = 2 P[Binom(3, 1/2) <= 1] = 1.
  auto m = mcnemar_exact({1, 1, 0, 0, 1}, {0, 1, 1, 0, 0});
  EXPECT_EQ(m.only_a, 2);
  EXPECT_EQ(m.only_b, 1);
  EXPECT_EQ(m.p, 1.0);
  // 5 against 0: 2 / 2^5.
  m = mcnemar_exact({1, 1, 1, 1, 1, 0}, {0, 0, 0, 0, 0, 0});
  EXPECT_EQ(m.p, 2.0 / 32.0);
  EXPECT_EQ(mcnemar_exact({1, 0}, {1, 0}).p, 1.0);  // no discordant item
  EXPECT_THROW(mcnemar_exact({1}, {1, 0}), std::exception);
}

TEST(Paired, PercentileIsNumpysLinearInterpolation) {
  EXPECT_EQ(percentile({4, 1, 3, 2}, 50), 2.5);
  EXPECT_EQ(percentile({4, 1, 3, 2}, 0), 1.0);
  EXPECT_EQ(percentile({4, 1, 3, 2}, 100), 4.0);
  // index 0.025 * 1999 = 49.975 over 0..1999: 49.975
  std::vector<double> x(2000);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<double>(x.size() - 1 - i);
  EXPECT_NEAR(percentile(x, 2.5), 49.975, 1e-12);
  const Interval ci = percentile_interval(x, 0.95);
  EXPECT_NEAR(ci.lo, 49.975, 1e-12);
  EXPECT_NEAR(ci.hi, 1949.025, 1e-12);
}

TEST(Paired, ResamplesAreTheSameItemsForEverySeriesAndDependOnTheTaskAlone) {
  BootstrapOptions o;
  o.resamples = 50;
  const std::size_t n = 7;
  // One-hot series: series i's resampled mean is how often item i was drawn, over n.
  std::vector<std::vector<double>> onehot(n, std::vector<double>(n, 0.0));
  for (std::size_t i = 0; i < n; ++i) onehot[i][i] = 1;
  const auto theta = resample_means(onehot, "task-a", o);
  for (std::int64_t r = 0; r < o.resamples; ++r) {
    std::vector<int> counts(n, 0);
    for (std::int64_t j = 0; j < static_cast<std::int64_t>(n); ++j) {
      const auto item = bootstrap_draw(o, "task-a", static_cast<std::int64_t>(n), r, j);
      ASSERT_GE(item, 0);
      ASSERT_LT(item, static_cast<std::int64_t>(n));
      ++counts[static_cast<std::size_t>(item)];
    }
    double total = 0;
    for (std::size_t i = 0; i < n; ++i) {
      EXPECT_EQ(theta[i][static_cast<std::size_t>(r)], counts[i] / static_cast<double>(n));
      total += theta[i][static_cast<std::size_t>(r)];
    }
    EXPECT_NEAR(total, 1.0, 1e-15);
  }
  // Deterministic; another task or seed draws other items; a series alone gets the same draws.
  EXPECT_EQ(resample_means(onehot, "task-a", o), theta);
  EXPECT_NE(resample_means(onehot, "task-b", o), theta);
  BootstrapOptions other = o;
  other.seed = 1;
  EXPECT_NE(resample_means(onehot, "task-a", other), theta);
  EXPECT_EQ(resample_means({onehot[3]}, "task-a", o)[0], theta[3]);
}

TEST(Paired, IdenticalModelsHaveAZeroInterval) {
  BootstrapOptions o;
  const std::vector<double> zero(40, 0.0);
  const auto theta = resample_means({zero}, "t", o);
  ASSERT_EQ(theta[0].size(), 2000u);
  const Interval ci = percentile_interval(theta[0], o.level);
  EXPECT_EQ(ci.lo, 0.0);
  EXPECT_EQ(ci.hi, 0.0);
  EXPECT_THROW(resample_means({zero, std::vector<double>(3)}, "t", o), std::exception);
}

}  // namespace
}  // namespace ms::eval
