"""statsmodels' Logit and scipy's Mann-Whitney AUC against the hand-written code they replaced.

The reference is the replaced code itself, kept here verbatim (and only here): a Newton / IRLS
logistic fit and an O(n^2) pairwise AUC. Both methods compute the same maximum-likelihood
estimate, inverse-information standard errors, Wald p-value and rank statistic, so on inputs where
the MLE exists they must agree to 1e-9. Inputs are fixed by seeds (no files), and include ties,
the closed-form 2x2 case, and overlapping classes of every size the studies see.
"""
import math

import numpy as np
import pytest
from scipy import stats as sps

from analysis import stats

TOL = 1e-9


def _old_logistic_fit(x, y, max_iter=100, tol=1e-10):
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    X = np.column_stack([np.ones_like(x), x])
    beta = np.zeros(2)
    for _ in range(max_iter):
        p = 1.0 / (1.0 + np.exp(-(X @ beta)))
        w = p * (1 - p)
        H = X.T @ (X * w[:, None])
        g = X.T @ (y - p)
        step = np.linalg.solve(H, g)
        beta = beta + step
        if np.max(np.abs(step)) < tol:
            break
    p = 1.0 / (1.0 + np.exp(-(X @ beta)))
    cov = np.linalg.inv(X.T @ (X * (p * (1 - p))[:, None]))
    se = np.sqrt(np.diag(cov))
    return {"a": beta[0], "b": beta[1], "se_a": se[0], "se_b": se[1],
            "p_b": 2 * sps.norm.sf(abs(beta[1] / se[1]))}


def _old_auc(score, y):
    score = np.asarray(score, float)
    y = np.asarray(y, float)
    pos, neg = score[y == 1], score[y == 0]
    gt = (pos[:, None] > neg[None, :]).sum()
    eq = (pos[:, None] == neg[None, :]).sum()
    return float((gt + 0.5 * eq) / (len(pos) * len(neg)))


def _cases():
    """(x, y) pairs: overlapping classes (the MLE exists), 8 to 400 points, some with ties."""
    yield [0, 0, 0, 0, 1, 1, 1, 1], [1, 1, 1, 0, 1, 0, 0, 0]   # closed form: a = ln 3, b = -2 ln 3
    for seed, n in enumerate((8, 12, 20, 40, 75, 150, 400)):
        rng = np.random.default_rng(seed)
        x = rng.normal(0, 1, n)
        if seed % 2:
            x = np.round(x, 1)                                 # ties in the predictor
        y = (rng.random(n) < 1 / (1 + np.exp(-(0.3 - 1.2 * x)))).astype(float)
        if y.min() == y.max() or x[y == 1].max() < x[y == 0].min() or x[y == 0].max() < x[y == 1].min():
            continue
        yield x.tolist(), y.tolist()


def max_differences():
    """The largest absolute differences over _cases(), per output: {name: diff}."""
    worst = {k: 0.0 for k in ("a", "b", "se_a", "se_b", "p_b", "auc")}
    for x, y in _cases():
        new, old = stats.logistic_fit(x, y), _old_logistic_fit(x, y)
        assert new["converged"] and not new["separated"]
        for k in ("a", "b", "se_a", "se_b", "p_b"):
            worst[k] = max(worst[k], abs(new[k] - old[k]))
        worst["auc"] = max(worst["auc"], abs(stats.auc(x, y) - _old_auc(x, y)),
                           abs(stats.auc(-np.asarray(x), y) - _old_auc(-np.asarray(x), y)))
    return worst


def test_statsmodels_logit_and_mannwhitney_auc_agree_with_the_replaced_code():
    worst = max_differences()
    assert all(v <= TOL for v in worst.values()), worst


def test_closed_form_still_holds():
    f = stats.logistic_fit([0, 0, 0, 0, 1, 1, 1, 1], [1, 1, 1, 0, 1, 0, 0, 0])
    assert f["a"] == pytest.approx(math.log(3), abs=TOL)
    assert f["b"] == pytest.approx(-2 * math.log(3), abs=TOL)
    assert f["se_b"] == pytest.approx(math.sqrt(2 / 0.75), abs=TOL)


def test_auc_p_value_is_mann_whitney():
    score, y = [3, 2, 1, 1, 5, 4], [1, 0, 1, 0, 1, 0]
    a, p = stats.auc_test(score, y)
    assert a == pytest.approx(_old_auc(score, y), abs=TOL)
    u = sps.mannwhitneyu([3, 1, 5], [2, 1, 4], alternative="two-sided")
    assert p == pytest.approx(u.pvalue, abs=TOL)
    assert stats.auc_test([1, 1], [1, 0]) == (0.5, 1.0)


if __name__ == "__main__":  # prints the agreement numbers the notes quote
    for k, v in max_differences().items():
        print(f"{k:5s} max |new - old| = {v:.3g}")
