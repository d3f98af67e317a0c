// Paired statistics of two models scored on the same items: is their difference larger than the
// noise of the items? The definitions are analysis/paired.py's (docs/eval.md, "Comparing
// models"), so `mergesweep eval A B` and `analysis report` state the same thing:
//  - a paired percentile bootstrap: every resample draws a task's n items with replacement once,
//    and every compared series is averaged over those same drawn items; the interval is the
//    (1-level)/2 and (1+level)/2 percentiles of the resampled statistic (numpy.percentile's
//    linear interpolation); a mean over tasks resamples each task on its own draws;
//  - the exact McNemar test: of the items two models disagree on, how many each got right;
//    two-sided p = min(1, 2 P[Binom(n01 + n10, 1/2) <= min(n01, n10)]).
// Draws come from the counter RNG keyed by (seed, task name), so a task's resamples do not depend
// on which other tasks or models are compared, on the order, or on the thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ms::eval {

struct BootstrapOptions {
  std::uint64_t seed = 0;         // analysis' default (analysis/intervals.py SEED)
  std::int64_t resamples = 2000;  // analysis/intervals.py RESAMPLES
  double level = 0.95;            // analysis/intervals.py LEVEL
};

// The item drawn at position j of resample r of `task` (n items): a pure function of
// (seed, task, r, j).
std::int64_t bootstrap_draw(const BootstrapOptions& o, const std::string& task, std::int64_t n, std::int64_t r,
                            std::int64_t j);

// For each series (per-item values of one task, every series of the task's n items), its mean
// over the items each resample draws: out[s][r]. The same drawn items serve every series.
std::vector<std::vector<double>> resample_means(const std::vector<std::vector<double>>& series, const std::string& task,
                                                const BootstrapOptions& o);

// numpy.percentile(x, q) with its default linear interpolation; q in [0, 100], x not empty.
double percentile(std::vector<double> x, double q);

struct Interval {
  double lo = 0, hi = 0;
};
// The percentile interval of resampled statistics at `level`.
Interval percentile_interval(const std::vector<double>& theta, double level);

struct McNemar {
  std::int64_t only_a = 0, only_b = 0;  // items only `a` got right, only `b` got right
  double p = 1;                         // exact two-sided p
};
// Exact McNemar test of two 0/1 outcome vectors over the same items.
McNemar mcnemar_exact(const std::vector<std::uint8_t>& a, const std::vector<std::uint8_t>& b);

// P[Binom(n, 1/2) <= k], summed from the largest term down in double (k <= n).
double binomial_half_cdf(std::int64_t k, std::int64_t n);

}  // namespace ms::eval
