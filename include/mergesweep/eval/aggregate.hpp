// lm-eval's task aggregations from per-item values: the one definition used when a task is scored
// (TaskTally::metrics, the rolling metrics) and when `mergesweep archive verify` recomputes the
// /results rows from the archived per-item rows. Header-only so the archive tools need no torch.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace ms::eval {

// A 0/1 metric with k ones among n items: mean = k / n; lm-eval's standard error is the sample
// standard deviation (ddof 1) over sqrt(n), and for 0/1 values the squared deviations sum to
// k (1 - mean)^2 + (n - k) mean^2. NaN for no item (both) and for a single item (stderr: N/A).
inline double count_mean(std::int64_t k, std::int64_t n) {
  return n == 0 ? std::nan("") : static_cast<double>(k) / static_cast<double>(n);
}
inline double count_stderr(std::int64_t k, std::int64_t n) {
  if (n < 2) return std::nan("");
  const double dn = static_cast<double>(n), mean = static_cast<double>(k) / dn;
  const double ss = static_cast<double>(k) * (1.0 - mean) * (1.0 - mean) + static_cast<double>(n - k) * mean * mean;
  return std::sqrt(ss / (dn - 1.0)) / std::sqrt(dn);
}

// loglikelihood_rolling over documents (lm-eval's weighted_mean, summed in document order):
// word_perplexity = exp(-Σ loglik / Σ words), byte_perplexity = exp(-Σ loglik / Σ bytes),
// bits_per_byte = -(Σ loglik / Σ bytes) / ln 2.
struct RollingMetrics {
  double word_perplexity = 0, byte_perplexity = 0, bits_per_byte = 0;
};
inline RollingMetrics rolling_metrics(const std::vector<double>& doc_loglik, const std::vector<std::int64_t>& words,
                                      const std::vector<std::int64_t>& bytes) {
  double loglik = 0;
  std::int64_t w = 0, b = 0;
  for (std::size_t d = 0; d < doc_loglik.size(); ++d) {
    loglik += doc_loglik[d];
    w += words[d];
    b += bytes[d];
  }
  const double per_word = loglik / static_cast<double>(w), per_byte = loglik / static_cast<double>(b);
  return {std::exp(-per_word), std::exp(-per_byte), -per_byte / std::log(2.0)};
}

}  // namespace ms::eval
