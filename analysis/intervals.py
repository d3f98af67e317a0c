"""Intervals, tests and multiple-comparison control for the studies' aggregates (scipy and
statsmodels; pure functions, no file access).

- a share (k of n subsets beat the base): Wilson score interval (statsmodels proportion_confint);
- a mean over subsets (mean gain at one n): percentile bootstrap over the subsets (scipy.stats.
  bootstrap), seeded: the same seed and data give the same interval, whatever else is computed;
- p-values of a table: Holm (family-wise error) or Benjamini-Hochberg (false discovery rate), by
  statsmodels.stats.multitest, the choice named in the table's `p_adjust` column.

The subsets of one (method point, n) are independent draws of checkpoints, so they are the unit
of resampling. Paired resampling of items (archive format 4) is in paired.py.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats as sps

LEVEL = 0.95        # every interval's coverage
RESAMPLES = 2000    # bootstrap resamples per interval
SEED = 0            # default bootstrap seed (the CLI's --seed)
MIN_PER_SIZE = 5    # fewer subsets per (method point, n) than this: the interval is unreliable

# --p-adjust names -> (statsmodels method, the name printed in tables)
P_ADJUST = {"holm": ("holm", "Holm"), "bh": ("fdr_bh", "Benjamini-Hochberg")}


def wilson(k: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval of the share k / n; (NaN, NaN) when n = 0."""
    from statsmodels.stats.proportion import proportion_confint

    if n <= 0:
        return math.nan, math.nan
    lo, hi = proportion_confint(int(k), int(n), alpha=1 - level, method="wilson")
    # exact at k = 0 and k = n (rounding leaves 1e-17 otherwise)
    return (0.0 if k == 0 else float(lo)), (1.0 if k == n else float(hi))


def bootstrap_mean(x, seed: int = SEED, resamples: int = RESAMPLES,
                   level: float = LEVEL) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of x (NaNs dropped); (NaN, NaN) below 2 values."""
    x = np.asarray(x, float)
    x = x[~np.isnan(x)]
    if len(x) < 2:
        return math.nan, math.nan
    if np.ptp(x) == 0:
        return float(x[0]), float(x[0])
    r = sps.bootstrap((x,), np.mean, n_resamples=resamples, confidence_level=level, method="percentile",
                      vectorized=True, random_state=np.random.default_rng(seed))
    return float(r.confidence_interval.low), float(r.confidence_interval.high)


def signed_rank_p(x) -> float:
    """Two-sided Wilcoxon signed-rank p-value of "x is centred on 0" (zeros dropped); NaN
    without a nonzero value."""
    x = np.asarray(x, float)
    x = x[~np.isnan(x) & (x != 0)]  # dropped here, so that the exact distribution applies
    if len(x) == 0:
        return math.nan
    with warnings.catch_warnings():  # ties fall back to the normal approximation: say nothing
        warnings.simplefilter("ignore", UserWarning)
        return float(sps.wilcoxon(x, alternative="two-sided").pvalue)


def binom_p(k: int, n: int, p0: float, alternative: str = "greater") -> float:
    """Exact binomial p-value of k successes in n against a share p0."""
    if n <= 0:
        return math.nan
    return float(sps.binomtest(int(k), int(n), p0, alternative=alternative).pvalue)


def mwu_p(a, b, alternative: str) -> float:
    """Mann-Whitney U p-value of a against b ("less": a tends to be smaller)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if len(a) == 0 or len(b) == 0:
        return math.nan
    if np.ptp(np.concatenate([a, b])) == 0:
        return 1.0
    return float(sps.mannwhitneyu(a, b, alternative=alternative).pvalue)


def adjust(pvalues, method: str = "holm") -> np.ndarray:
    """Adjusted p-values (method: a P_ADJUST key); NaNs stay NaN and are not in the family."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(pvalues, float)
    out = np.full(p.shape, math.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method=P_ADJUST[method][0])[1]
    return out


def adjust_name(method: str) -> str:
    return P_ADJUST[method][1]


def auc_bootstrap(score, y, seed: int = SEED, resamples: int = RESAMPLES,
                  level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of the AUC (Mann-Whitney U / (n+ n-)) from a bootstrap that resamples
    positives and negatives separately (class sizes fixed)."""
    score, y = np.asarray(score, float), np.asarray(y, float)
    pos, neg = score[y == 1], score[y == 0]
    if len(pos) < 2 or len(neg) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    both = np.concatenate([pos[rng.integers(0, len(pos), (resamples, len(pos)))],
                           neg[rng.integers(0, len(neg), (resamples, len(neg)))]], axis=1)
    ranks = sps.rankdata(both, axis=1)  # ties: mid-ranks, i.e. one half in U
    u = ranks[:, :len(pos)].sum(axis=1) - len(pos) * (len(pos) + 1) / 2
    a = u / (len(pos) * len(neg))
    q = (1 - level) / 2
    return float(np.quantile(a, q)), float(np.quantile(a, 1 - q))


def spearman_ci(rho: float, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Interval of Spearman's rho by Fisher's z with the Bonett-Wright (2000) standard error
    sqrt((1 + rho^2 / 2) / (n - 3)); NaN below 4 points."""
    if n < 4 or rho != rho:
        return math.nan, math.nan
    r = min(max(rho, -0.999999), 0.999999)
    se = math.sqrt((1 + r * r / 2) / (n - 3))
    z = sps.norm.ppf(1 - (1 - level) / 2)
    return float(math.tanh(math.atanh(r) - z * se)), float(math.tanh(math.atanh(r) + z * se))


def share_cols(flags, prefix: str) -> dict:
    """{prefix: share, prefix_lo, prefix_hi} with Wilson bounds for a 0/1 series (NaNs dropped)."""
    f = np.asarray(flags, float)
    f = f[~np.isnan(f)]
    lo, hi = wilson(int(f.sum()), len(f))
    return {prefix: float(f.mean()) if len(f) else math.nan, f"{prefix}_lo": lo, f"{prefix}_hi": hi}


def mean_cols(x, prefix: str, seed: int = SEED, resamples: int = RESAMPLES) -> dict:
    """{prefix_lo, prefix_hi}: the bootstrap interval of the mean of x."""
    lo, hi = bootstrap_mean(x, seed, resamples)
    return {f"{prefix}_lo": lo, f"{prefix}_hi": hi}


def fmt_ci(lo: float, hi: float, digits: int = 3, pct: bool = False, signed: bool = True) -> str:
    """"[lo, hi]" for printing (percentages with pct); "[n/a]" for a missing interval."""
    if lo != lo or hi != hi:
        return "[n/a]"
    if pct:
        return f"[{lo:.0%}, {hi:.0%}]"
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    return f"[{f.format(lo)}, {f.format(hi)}]"


def fmt_p(p: float) -> str:
    return "n/a" if p != p else (f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}")
