"""One finding as a row, and the rule that turns its numbers into a verdict (shared by the
systematic and pipeline findings).

A testable row carries:
  holds    the measured estimate satisfies the claim (for an interval claim: its interval does);
  against  the data contradict the claim: the interval lies wholly on the wrong side of the
           threshold, or the one-sided test in the opposite direction is significant (5%);
  p        the p-value of the claim's own test (one-sided where the claim has a direction), NaN
           where the claim is decided by an interval alone or no test applies.
After every row of a table is measured, the p-values are adjusted together (Holm or
Benjamini-Hochberg: `p_adjust`). Then:
  yes    holds, and p_adj < ALPHA (or no p applies);
  no     against;
  noise  neither: "not distinguishable from noise";
  n/a    the archive cannot test the claim (the reason is in `measured`).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import intervals as iv
from .stats import _fmt, parse_params

ALPHA = 0.05
COLUMNS = ["study", "finding", "point", "reproduced", "measured", "estimate", "ci_low", "ci_high",
           "p", "p_adj", "p_adjust", "warning"]
NOISE = "not distinguishable from noise"


def row(study: str, finding: str, point: str, measured: str, *, holds: bool, against: bool = False,
        p: float = math.nan, estimate: float = math.nan, ci=(math.nan, math.nan), warning: str = "") -> dict:
    return {"study": study, "finding": finding, "point": point, "measured": measured,
            "estimate": estimate, "ci_low": ci[0], "ci_high": ci[1], "p": p, "warning": warning,
            "_holds": bool(holds), "_against": bool(against), "reproduced": None}


def na(study: str, finding: str, point: str, why: str, warning: str = "") -> dict:
    r = row(study, finding, point, f"not testable here: {why}", holds=False, warning=warning)
    r["reproduced"] = "n/a"
    return r


def decide(rows: list[dict], p_adjust: str = "holm") -> pd.DataFrame:
    """The table (COLUMNS) with p-values adjusted over its rows and a verdict per row."""
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    tab = pd.DataFrame(rows)
    tab["p_adj"] = iv.adjust(tab["p"].to_numpy(float), p_adjust)
    tab["p_adjust"] = iv.adjust_name(p_adjust)
    verdicts = []
    for rep, holds, against, p_adj in zip(tab["reproduced"], tab["_holds"], tab["_against"], tab["p_adj"]):
        if rep == "n/a":
            verdicts.append("n/a")
        elif holds and not (p_adj == p_adj and p_adj >= ALPHA):
            verdicts.append("yes")
        elif against:
            verdicts.append("no")
        else:
            verdicts.append("noise")
    tab["reproduced"] = verdicts
    return tab[COLUMNS]


def point_name(g: pd.DataFrame) -> str:
    """The parameter point a frame of merges tests: its label (method and the parameters that vary
    within the method), plus the parameters it shares when there is one point."""
    labels = sorted(set(g["label"])) if "label" in g else sorted(set(g["method"]))
    if len(labels) != 1:
        return ", ".join(labels)
    name = labels[0]
    if "[" not in name and "params" in g and len(g):
        ps = {str(sorted(parse_params(p).items())) for p in g["params"]}
        if len(ps) == 1:
            p = parse_params(g["params"].iloc[0])
            if p:
                name += " (" + ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(p.items())) + ")"
    return name


def points(gains: pd.DataFrame, method: str) -> list[tuple[str, pd.DataFrame]]:
    """The parameter points of `method` in gains: [(name, merges of that point)]."""
    g = gains[gains["method"] == method]
    if not len(g):
        return []
    key = "label" if "label" in g else "method"
    return [(point_name(x), x) for _, x in g.groupby(key, sort=True)]


def few_warning(g: pd.DataFrame, what: str = "subsets") -> str:
    """A warning when some size n has fewer than iv.MIN_PER_SIZE merges ("" otherwise)."""
    if not len(g):
        return ""
    per = g.groupby("n").size()
    low = per[per < iv.MIN_PER_SIZE]
    if not len(low):
        return ""
    return (f"only {int(low.min())} {what} per size at n={', '.join(str(int(n)) for n in low.index)}: too few for "
            f"a reliable interval (want >= {iv.MIN_PER_SIZE})")


def share_text(k: int, n: int) -> str:
    lo, hi = iv.wilson(k, n)
    return f"{k}/{n} = {k / n:.0%} {iv.fmt_ci(lo, hi, pct=True)}" if n else "0/0"


def iut(ps) -> float:
    """p-value of a conjunction of claims (intersection-union test): the largest p."""
    ps = [p for p in ps if p == p]
    return max(ps) if ps else math.nan


def any_of(ps) -> float:
    """p-value of "at least one holds" over m tests: Bonferroni's m x min p, at most 1."""
    ps = [p for p in ps if p == p]
    return min(1.0, len(ps) * min(ps)) if ps else math.nan


def by_n_text(g: pd.DataFrame, col: str, seed: int, resamples: int) -> str:
    """"n=2: +0.012 [-0.003, +0.020], ..." : mean per n with its bootstrap interval."""
    parts = []
    for n, x in g.groupby("n", sort=True)[col]:
        lo, hi = iv.bootstrap_mean(x, seed, resamples)
        parts.append(f"n={int(n)}: {x.mean():+.3f} {iv.fmt_ci(lo, hi)}")
    return ", ".join(parts)


def pct(x: float) -> str:
    return "n/a" if x != x else f"{x:.0%}"


def as_float(x) -> float:
    return float(np.asarray(x, float))
