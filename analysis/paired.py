"""Paired statistics over items (archive format 4): is a merge's difference to another model larger
than the noise of the items?

- A merge's gain over the base and over the best single checkpoint of its subset, with a paired
  percentile bootstrap interval: every resample draws the items (with replacement, within each
  task) once and scores both models on the same drawn items. The score is the mean over tasks of
  the task's mean of a 0/1 metric, as `stats.config_scores` computes it from /results.
- An exact McNemar test per task and pair: of the items the two models disagree on, how many each
  got right; two-sided binomial p at 1/2 (statsmodels' mcnemar(exact=True)).

Resampling is scipy.stats.bootstrap's (paired=True): for a task of n items, the resamples are the
rows of `default_rng(seed).integers(0, n, (resamples, n))`, tasks in sorted order drawing from one
generator. So with one task the interval is bit for bit the one scipy gives for the same seed
(analysis/tests/test_paired.py checks it); the same draws serve every config and both references,
which makes the whole table one set of resamples, and lets it run as matrix products: each
resample's item counts times every config's per-item differences.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as sps

from .intervals import LEVEL, RESAMPLES, SEED, adjust, adjust_name

BATCH = 250  # resamples drawn at a time (memory: BATCH x items of the largest task)


def resample_counts(n: int, rng: np.random.Generator, resamples: int = RESAMPLES):
    """Yields (batch, n) float matrices: row r counts how often each item is drawn in resample r.
    The draws are scipy.stats.bootstrap's, consumed in order from `rng`."""
    done = 0
    while done < resamples:
        b = min(BATCH, resamples - done)
        idx = rng.integers(0, n, (b, n))
        flat = (idx + (np.arange(b, dtype=np.int64) * n)[:, None]).ravel()
        yield np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)
        done += b


def bootstrap_gains(diffs: dict, seed: int = SEED, resamples: int = RESAMPLES, level: float = LEVEL):
    """Paired bootstrap of mean-over-tasks differences. `diffs` maps task -> (items, K) array of
    per-item differences (model minus reference, K comparisons). Returns (estimate, lo, hi), each
    of length K: the observed gain and the percentile interval at `level`."""
    tasks = sorted(diffs)
    k = next(iter(diffs.values())).shape[1] if diffs else 0
    estimate = np.mean([diffs[t].mean(axis=0) for t in tasks], axis=0) if tasks else np.zeros(0)
    theta = np.zeros((resamples, k))
    rng = np.random.default_rng(seed)
    for t in tasks:
        d = np.asarray(diffs[t], np.float64)
        n = d.shape[0]
        at = 0
        for counts in resample_counts(n, rng, resamples):
            theta[at:at + len(counts)] += (counts @ d) / n
            at += len(counts)
    theta /= max(len(tasks), 1)
    alpha = (1 - level) / 2
    lo, hi = np.percentile(theta, [100 * alpha, 100 * (1 - alpha)], axis=0) if k else (np.zeros(0), np.zeros(0))
    return estimate, lo, hi


def mcnemar_exact(a, b) -> tuple[int, int, float]:
    """Exact McNemar test of two models' 0/1 outcomes on the same items: (items only `a` got
    right, items only `b` got right, two-sided p = min(1, 2 P[Binom(n01 + n10, 1/2) <= min]))."""
    a = np.asarray(a, bool)
    b = np.asarray(b, bool)
    n01, n10 = int((a & ~b).sum()), int((~a & b).sum())
    p = min(1.0, 2.0 * float(sps.binom.cdf(min(n01, n10), n01 + n10, 0.5)))
    return n01, n10, p


def outcome_matrix(items: pd.DataFrame, metric: str = "acc") -> dict:
    """task -> (items, configs) 0/1 frame (columns: config ids) of the configs that have every item."""
    out = {}
    for task, g in items.groupby("task", observed=True, sort=True):
        out[str(task)] = g.pivot(index="item", columns="config_id", values=metric).dropna(axis=1).astype(np.float64)
    return out


def references(configs: pd.DataFrame, scores: pd.Series) -> pd.DataFrame:
    """Per merge: its base config and the best single checkpoint of its subset (highest score,
    ties to the lowest checkpoint number; None when a member's single is missing).
    `scores`: config_id -> the score both are ranked by."""
    c = configs[configs["config_id"].isin(scores.index)]
    base = c.loc[c["kind"] == "base", "config_id"]
    single = {int(m[0]): cid for cid, m in zip(c.loc[c["kind"] == "single", "config_id"],
                                               c.loc[c["kind"] == "single", "members"])}
    rows = []
    for cid, members in zip(c.loc[c["kind"] == "merge", "config_id"], c.loc[c["kind"] == "merge", "members"]):
        ks = [int(k) for k in members]
        best = None
        if ks and all(k in single for k in ks):
            best = single[max(ks, key=lambda k: (scores[single[k]], -k))]
        rows.append({"config_id": cid, "base_id": base.iloc[0] if len(base) else None, "best_id": best})
    return pd.DataFrame(rows, columns=["config_id", "base_id", "best_id"])


def _mcnemar_rows(task: str, refs: pd.DataFrame, m: pd.DataFrame) -> list:
    rows = []
    for cid, base, best in zip(refs["config_id"], refs["base_id"], refs["best_id"]):
        for ref, other in (("base", base), ("best_single", best)):
            if other is None:
                continue
            n01, n10, p = mcnemar_exact(m[cid].to_numpy(), m[other].to_numpy())
            rows.append({"config_id": cid, "task": task, "reference": ref, "only_merge": n01, "only_ref": n10, "p": p})
    return rows


def paired_gains(frames, metric: str = "acc", seed: int = SEED, resamples: int = RESAMPLES,
                 level: float = LEVEL, p_adjust: str = "holm") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every merge of `frames` (analysis.load) against the base and the best single checkpoint of
    its subset, over the items of the multiple_choice tasks (configs with every item only).

    Returns (gains, mcnemar):
      gains    one row per merge: config_id, label, n, sample, best_id, gain_base, gain_base_lo,
               gain_base_hi, gain_best, gain_best_lo, gain_best_hi (NaN without a best single),
               tasks, items, metric, seed, resamples
      mcnemar  one row per merge, task and reference (base / best_single): only_merge (items
               only the merge got right), only_ref, p, p_adj (`p_adjust` over the whole table),
               p_adjust (its name)
    Empty frames when the archive has no per-item rows."""
    if frames.items is None or frames.items.empty:
        return pd.DataFrame(), pd.DataFrame()
    mats = outcome_matrix(frames.items, metric)
    shared = set.intersection(*(set(m.columns) for m in mats.values()))
    scores = pd.Series({cid: float(np.mean([m[cid].mean() for m in mats.values()])) for cid in shared})
    refs = references(frames.configs, scores).dropna(subset=["base_id"])
    best = [b if b is not None else a for a, b in zip(refs["base_id"], refs["best_id"])]  # placeholder, masked below
    diffs, tests = {}, []
    for t, m in mats.items():
        merge = m[refs["config_id"]].to_numpy()
        diffs[t] = np.concatenate([merge - m[refs["base_id"]].to_numpy(), merge - m[best].to_numpy()], axis=1)
        tests += _mcnemar_rows(t, refs, m)
    est, lo, hi = bootstrap_gains(diffs, seed, resamples, level)
    k = len(refs)
    gains = refs.drop(columns=["base_id"]).reset_index(drop=True)
    info = frames.configs.set_index("config_id")
    for c in ("label", "n", "sample"):
        if c in info:
            gains[c] = info.loc[gains["config_id"], c].to_numpy()
    no_best = gains["best_id"].isna().to_numpy()
    for name, v in (("", est), ("_lo", lo), ("_hi", hi)):
        gains["gain_base" + name] = v[:k]
        gains["gain_best" + name] = np.where(no_best, math.nan, v[k:])
    gains["tasks"], gains["items"] = len(mats), sum(len(m) for m in mats.values())
    gains["metric"], gains["seed"], gains["resamples"] = metric, seed, resamples
    mc = pd.DataFrame(tests, columns=["config_id", "task", "reference", "only_merge", "only_ref", "p"])
    mc["p_adj"] = adjust(mc["p"].to_numpy(), p_adjust) if len(mc) else np.zeros(0)
    mc["p_adjust"] = adjust_name(p_adjust)
    return gains, mc
