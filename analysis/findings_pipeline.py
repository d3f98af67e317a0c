"""The pipeline study's findings (arXiv 2509.19476): behaviour vs probed internals of merges whose
parents are in the archive. Rows and verdicts as analysis/verdict.py describes; the caller
(analysis/findings.py) adjusts the p-values over the whole table.

Parents of a merge: the single checkpoints of its subset; a one-model merge (SLERP of the base
with one checkpoint) has the base and that checkpoint as parents. These claims pool every method
and parameter point (the point column says so), and their measured text says which points hold
on their own; the per-method table splits every number by point.
"""
from __future__ import annotations

import pandas as pd

from . import intervals as iv
from . import stats
from .verdict import ALPHA, iut, na, row

P = "pipeline"
ALL = "all merges with both parents (every method and parameter point)"
BETWEEN_SHARE = 0.5   # "most merges" behave between their parents
WEAK = 0.5            # |Spearman rho| below this is "weak"
SIMPLE = ("linear", "slerp")
COMPLEX = ("ties", "dare_ties")


def _f1_wide(probes: pd.DataFrame) -> pd.DataFrame:
    """Probe test F1 (mean over seeds): rows config id, columns (probe, layer)."""
    return probes.pivot_table(index="config_id", columns=["probe", "layer"], values="f1_mean", aggfunc="mean")


def parents_of(scores: pd.DataFrame) -> dict:
    """Merge id -> the config ids of its parents (module docstring)."""
    single = {int(m[0]): i for i, m in zip(scores.index[scores["kind"] == "single"],
                                           scores.loc[scores["kind"] == "single", "members"])}
    base = scores.index[scores["kind"] == "base"]
    out = {}
    for i, mem in zip(scores.index[scores["kind"] == "merge"], scores.loc[scores["kind"] == "merge", "members"]):
        par = [single.get(int(k)) for k in mem]
        if len(par) == 1 and len(base):
            par.append(base[0])
        if all(p is not None for p in par) and len(par) >= 2:
            out[i] = par
    return out


def merge_vs_parents(scores: pd.DataFrame, probes: pd.DataFrame) -> pd.DataFrame:
    """Per merge with known parents: method, label, its accuracy and its parents' range, whether
    it lies between them, and for probes: how many (probe, layer) cells exceed both parents, the
    largest margin over the better parent, and its cell; the mean F1 at the last layer."""
    par = parents_of(scores)
    f1 = _f1_wide(probes) if probes is not None and len(probes) else pd.DataFrame()
    last = max(c[1] for c in f1.columns) if len(f1.columns) else None
    rows = []
    for i, ps in par.items():
        acc = scores.loc[i, "score"]
        pa = [scores.loc[p, "score"] for p in ps]
        rec = {"id": i, "method": scores.loc[i, "method"], "label": scores.loc[i, "label"],
               "acc": acc, "parent_acc_min": min(pa), "parent_acc_max": max(pa),
               "acc_between": bool(min(pa) <= acc <= max(pa)), "acc_above": bool(acc > max(pa))}
        if len(f1) and i in f1.index and all(p in f1.index for p in ps):
            margin = f1.loc[i] - f1.loc[ps].max(axis=0)
            rec.update(f1_cells_above=int((margin > 0).sum()), f1_cells=int(margin.notna().sum()),
                       f1_best_margin=float(margin.max()), f1_best_cell=f"{margin.idxmax()[0]}@{margin.idxmax()[1]}",
                       f1_last=float(f1.loc[i].xs(last, level="layer").mean()))
        rows.append(rec)
    return pd.DataFrame(rows)


def method_table(scores: pd.DataFrame, probes: pd.DataFrame) -> pd.DataFrame:
    """Behaviour vs internals per merge method and parameter point (`point`: the label, e.g.
    task_arithmetic[lambda=0.5]; points are never pooled): merges, mean accuracy, share with
    accuracy between the parents (Wilson interval), share above both, mean probe F1 at the last
    layer, share above both parents on at least one probe cell, and the Spearman and Pearson
    correlation (with p) between accuracy and last-layer F1 over that point's merges."""
    mv = merge_vs_parents(scores, probes)
    if len(mv) == 0:
        return pd.DataFrame()
    rows = []
    for label, g in mv.groupby("label", sort=True):
        rec = {"method": g["method"].iloc[0], "point": label, "merges": len(g), "acc_mean": g["acc"].mean(),
               **iv.share_cols(g["acc_between"].astype(float), "acc_between_parents"),
               "acc_above_parents": g["acc_above"].mean()}
        if "f1_last" in g:
            c = stats.correlation(g["acc"], g["f1_last"])
            rec.update(f1_last_mean=g["f1_last"].mean(), f1_above_parents=(g["f1_cells_above"] > 0).mean(),
                       spearman_rho=c["spearman_rho"], spearman_p=c["spearman_p"],
                       pearson_r=c["pearson_r"], pearson_p=c["pearson_p"])
        rows.append(rec)
    return pd.DataFrame(rows)


def pipeline_findings(scores: pd.DataFrame, probes: pd.DataFrame, o: dict | None = None) -> list[dict]:
    claims = ("merged models' probe F1 can surpass both parents on some probe",
              f"behaviour (benchmark accuracy) lies between the parents for most merges (> {BETWEEN_SHARE:.0%})",
              f"behaviour and probed internals correlate weakly (|Spearman rho| < {WEAK}), reported with p",
              "simpler methods (Linear, SLERP) beat TIES and DARE-TIES in behaviour and internals")
    mv = merge_vs_parents(scores, probes)
    if len(mv) == 0:
        return [na(P, c, ALL, "no merge whose parents are in the archive") for c in claims]
    return [_surpass(mv, claims[0]), _between(mv, claims[1]),
            _behaviour_probe_correlation(scores, probes, claims[2]), _simple_vs_complex(mv, claims[3])]


def _per_point(mv: pd.DataFrame, hit: pd.Series, holds) -> str:
    """"; per point: a k/m, b k/m; holds at: a" : `hit` (bool per merge) counted per point, and the
    points whose share satisfies `holds(k, m)`."""
    per = hit.groupby(mv["label"], sort=True).agg(["sum", "size"])
    parts = [f"{lab} {int(k)}/{int(m)}" for lab, k, m in zip(per.index, per["sum"], per["size"])]
    good = [lab for lab, k, m in zip(per.index, per["sum"], per["size"]) if holds(int(k), int(m))]
    return f"; per point: {', '.join(parts)}; holds at: {', '.join(good) if good else 'no point'}"


def _surpass(mv: pd.DataFrame, claim: str) -> dict:
    if "f1_cells_above" not in mv:
        return na(P, claim, ALL, "no probe results")
    above = mv["f1_cells_above"] > 0
    n_above = int(above.sum())
    best = mv.loc[mv["f1_best_margin"].idxmax()]
    return row(P, claim, ALL,
               f"{n_above} of {len(mv)} merges exceed both parents on >= 1 (probe, layer); largest margin "
               f"{best['f1_best_margin']:+.3f} F1 ({best['label']}, {best['f1_best_cell']})"
               + _per_point(mv, above, lambda k, m: k > 0),
               holds=n_above > 0, against=n_above == 0,
               warning="no interval or p: a margin's noise needs per-item probe outcomes, not in the archive")


def _between(mv: pd.DataFrame, claim: str) -> dict:
    k, m = int(mv["acc_between"].sum()), len(mv)
    lo, hi = iv.wilson(k, m)
    p = iv.binom_p(k, m, BETWEEN_SHARE, "greater")
    return row(P, claim, ALL,
               f"{k / m:.0%} of {m} merges between their parents, {mv['acc_above'].mean():.0%} above both "
               f"(Wilson {iv.LEVEL:.0%} {iv.fmt_ci(lo, hi, pct=True)}; exact binomial p = {iv.fmt_p(p)} for a share "
               f"> {BETWEEN_SHARE:.0%})" + _per_point(mv, mv["acc_between"], lambda a, b: a / b > BETWEEN_SHARE),
               holds=k / m > BETWEEN_SHARE, against=hi <= BETWEEN_SHARE, p=p,
               estimate=k / m, ci=(lo, hi),
               warning="" if m >= iv.MIN_PER_SIZE else f"only {m} merges: too few for a reliable interval")


def _behaviour_probe_correlation(scores: pd.DataFrame, probes: pd.DataFrame, claim: str) -> dict:
    point = "all configs (base, single checkpoints, merges)"
    if probes is None or len(probes) == 0:
        return na(P, claim, point, "no probe results")
    last = probes["layer"].max()
    f1 = probes[probes["layer"] == last].groupby("config_id")["f1_mean"].mean()
    c = stats.correlation(scores["score"].reindex(f1.index).values, f1.values)
    if c["spearman_rho"] != c["spearman_rho"]:
        return na(P, claim, point, f"{c['n']} configs with accuracy and probes")
    lo, hi = iv.spearman_ci(c["spearman_rho"], c["n"])
    inside, outside = -WEAK < lo and hi < WEAK, lo >= WEAK or hi <= -WEAK
    return row(P, claim, point,
               f"Spearman rho = {c['spearman_rho']:+.2f} ({iv.LEVEL:.0%} Fisher-z {iv.fmt_ci(lo, hi, 2)}, p = "
               f"{iv.fmt_p(c['spearman_p'])} against 0), Pearson r = {c['pearson_r']:+.2f} (p = "
               f"{iv.fmt_p(c['pearson_p'])}) over {c['n']} configs, mean F1 of all probes at the last layer "
               f"({int(last)}); decided by the interval against +-{WEAK}", holds=inside, against=outside,
               estimate=c["spearman_rho"], ci=(lo, hi),
               warning="" if c["n"] >= 10 else f"only {c['n']} configs: the interval is approximate")


def _simple_vs_complex(mv: pd.DataFrame, claim: str) -> dict:
    simple, complex_ = mv[mv["method"].isin(SIMPLE)], mv[mv["method"].isin(COMPLEX)]
    point = "linear + slerp vs ties + dare_ties merges (every parameter point)"
    if len(simple) == 0 or len(complex_) == 0:
        return na(P, claim, point, "needs linear or slerp and ties or dare_ties merges")
    cols = ["acc"] + (["f1_last"] if "f1_last" in mv else [])
    txt, holds, p_more, p_less = [], True, [], []
    for c in cols:
        a, b = simple[c].mean(), complex_[c].mean()
        p_more.append(iv.mwu_p(simple[c], complex_[c], "greater"))
        p_less.append(iv.mwu_p(simple[c], complex_[c], "less"))
        holds = holds and a > b
        name = "accuracy" if c == "acc" else "last-layer F1"
        txt.append(f"{name} {a:.3f} vs {b:.3f} (Mann-Whitney one-sided p = {iv.fmt_p(p_more[-1])})")
    p = iut(p_more)
    return row(P, claim, point, "; ".join(txt) + f"; p = {iv.fmt_p(p)} (largest of the two)", holds=holds,
               against=any(q < ALPHA for q in p_less), p=p,
               estimate=simple["acc"].mean() - complex_["acc"].mean(),
               warning="" if min(len(simple), len(complex_)) >= iv.MIN_PER_SIZE else
               f"only {min(len(simple), len(complex_))} merges on one side: too few for a reliable test")
