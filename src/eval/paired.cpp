#include "mergesweep/eval/paired.hpp"

#include <algorithm>
#include <cmath>

#include "counter_rng.hpp"
#include "mergesweep/core/error.hpp"

namespace ms::eval {
namespace {

CounterRng task_stream(const BootstrapOptions& o, const std::string& task) {
  return CounterRng(o.seed, "paired bootstrap over items: " + task);
}

}  // namespace

std::int64_t bootstrap_draw(const BootstrapOptions& o, const std::string& task, std::int64_t n, std::int64_t r,
                            std::int64_t j) {
  return static_cast<std::int64_t>(
      task_stream(o, task).below(static_cast<std::uint64_t>(r * n + j), static_cast<std::uint64_t>(n)));
}

std::vector<std::vector<double>> resample_means(const std::vector<std::vector<double>>& series, const std::string& task,
                                                const BootstrapOptions& o) {
  const std::size_t n = series.empty() ? 0 : series[0].size();
  for (const auto& s : series)
    if (s.size() != n)
      fail("", task,
           "paired series of different lengths (" + std::to_string(s.size()) + " and " + std::to_string(n) + " items)");
  if (n == 0 && !series.empty()) fail("", task, "no items to resample");
  if (o.resamples <= 0) fail("", "resamples", "must be positive, found " + std::to_string(o.resamples));
  const CounterRng rng = task_stream(o, task);
  const auto un = static_cast<std::uint64_t>(n);
  std::vector<std::vector<double>> out(series.size(), std::vector<double>(static_cast<std::size_t>(o.resamples)));
  std::vector<double> sum(series.size());
  for (std::int64_t r = 0; r < o.resamples; ++r) {
    std::fill(sum.begin(), sum.end(), 0.0);
    const std::uint64_t first = static_cast<std::uint64_t>(r) * un;
    for (std::uint64_t j = 0; j < un; ++j) {
      const auto item = static_cast<std::size_t>(rng.below(first + j, un));
      for (std::size_t s = 0; s < series.size(); ++s) sum[s] += series[s][item];
    }
    for (std::size_t s = 0; s < series.size(); ++s)
      out[s][static_cast<std::size_t>(r)] = sum[s] / static_cast<double>(n);
  }
  return out;
}

double percentile(std::vector<double> x, double q) {
  if (x.empty()) fail("", "percentile", "no values");
  std::sort(x.begin(), x.end());
  // numpy: virtual index (n - 1) * q / 100; lerp from the nearer end (numpy's _lerp).
  const double index = static_cast<double>(x.size() - 1) * (q / 100.0);
  const double below = std::floor(index);
  const auto i = static_cast<std::size_t>(below);
  const std::size_t k = std::min(i + 1, x.size() - 1);
  const double t = index - below, a = x[i], b = x[k], diff = b - a;
  return t >= 0.5 ? b - diff * (1.0 - t) : a + diff * t;
}

Interval percentile_interval(const std::vector<double>& theta, double level) {
  const double alpha = (1.0 - level) / 2.0;
  return {percentile(theta, 100.0 * alpha), percentile(theta, 100.0 * (1.0 - alpha))};
}

double binomial_half_cdf(std::int64_t k, std::int64_t n) {
  if (k >= n) return 1.0;
  // C(n, k) 2^-n by a product kept in range by frexp (the power of two tracked exactly), then the
  // terms below k by t(i-1) = t(i) i / (n - i + 1), added smallest first.
  long double v = 1.0L;
  long long e = 0;
  for (std::int64_t i = 0; i < k; ++i) {
    v *= static_cast<long double>(n - i) / static_cast<long double>(i + 1);
    int ex = 0;
    v = std::frexp(v, &ex);
    e += ex;
  }
  std::vector<long double> terms(static_cast<std::size_t>(k + 1));
  terms[static_cast<std::size_t>(k)] = std::ldexp(v, static_cast<int>(e - n));
  for (std::int64_t i = k; i > 0; --i)
    terms[static_cast<std::size_t>(i - 1)] =
        terms[static_cast<std::size_t>(i)] * static_cast<long double>(i) / static_cast<long double>(n - i + 1);
  long double sum = 0;
  for (const long double t : terms) sum += t;
  return static_cast<double>(std::min(sum, 1.0L));
}

McNemar mcnemar_exact(const std::vector<std::uint8_t>& a, const std::vector<std::uint8_t>& b) {
  if (a.size() != b.size())
    fail("", "mcnemar",
         "outcomes of different lengths (" + std::to_string(a.size()) + " and " + std::to_string(b.size()) + " items)");
  McNemar m;
  for (std::size_t i = 0; i < a.size(); ++i) {
    m.only_a += a[i] && !b[i];
    m.only_b += !a[i] && b[i];
  }
  m.p = std::min(1.0, 2.0 * binomial_half_cdf(std::min(m.only_a, m.only_b), m.only_a + m.only_b));
  return m;
}

}  // namespace ms::eval
