"""analysis/intervals.py against direct library calls and hand-computed values."""
import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from analysis import intervals as iv


def test_wilson_matches_the_formula():
    k, n, z = 3, 10, sps.norm.ppf(0.975)
    p = k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert iv.wilson(k, n) == pytest.approx((c - h, c + h), abs=1e-12)
    assert iv.wilson(0, 3)[0] == 0.0 and iv.wilson(3, 3)[1] == 1.0
    assert all(math.isnan(v) for v in iv.wilson(0, 0))


def test_bootstrap_is_seeded_and_covers_the_mean():
    x = np.random.default_rng(1).normal(0.02, 0.01, 30)
    a, b = iv.bootstrap_mean(x, seed=7), iv.bootstrap_mean(x, seed=7)
    assert a == b and a[0] < x.mean() < a[1]
    assert iv.bootstrap_mean(x, seed=8) != a
    assert iv.bootstrap_mean([0.1, 0.1, 0.1]) == (0.1, 0.1)
    assert all(math.isnan(v) for v in iv.bootstrap_mean([0.1]))


def test_adjust_is_statsmodels_and_skips_nan():
    p = [0.01, 0.04, float("nan"), 0.03]
    got = iv.adjust(p, "holm")
    want = multipletests([0.01, 0.04, 0.03], method="holm")[1]
    assert np.allclose(got[[0, 1, 3]], want) and math.isnan(got[2])
    assert np.allclose(iv.adjust(p, "bh")[[0, 1, 3]], multipletests([0.01, 0.04, 0.03], method="fdr_bh")[1])
    assert iv.adjust_name("bh") == "Benjamini-Hochberg"


def test_auc_bootstrap_and_spearman_interval():
    score = np.r_[np.linspace(0, 1, 20), np.linspace(0.5, 1.5, 20)]
    y = np.r_[np.zeros(20), np.ones(20)]
    lo, hi = iv.auc_bootstrap(score, y, seed=3)
    auc = sps.mannwhitneyu(score[y == 1], score[y == 0]).statistic / 400
    assert lo <= auc <= hi and iv.auc_bootstrap(score, y, seed=3) == (lo, hi)
    lo, hi = iv.spearman_ci(0.5, 30)
    assert lo < 0.5 < hi and math.isnan(iv.spearman_ci(0.5, 3)[0])


def test_signed_rank_drops_zeros_and_uses_the_exact_distribution():
    x = [0.0, 0.1, 0.2, -0.05, 0.3]
    assert iv.signed_rank_p(x) == pytest.approx(sps.wilcoxon([0.1, 0.2, -0.05, 0.3], mode="exact").pvalue)
    assert math.isnan(iv.signed_rank_p([0.0, 0.0]))
