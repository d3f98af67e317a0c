"""`python3 -m analysis findings ARCHIVE [ARCHIVE ...]`: each finding of the two studies as one
row per parameter point it tests: the claim, the point (e.g. task_arithmetic[lambda=0.5]), the
number measured in the archive with its interval and p-value, and the verdict: yes, no, "noise"
(not distinguishable from noise) or n/a with the reason (rules in analysis/verdict.py).

Findings of the systematic study (arXiv 2511.21437) need merges of several subset sizes n; those
of the pipeline study (arXiv 2509.19476, analysis/findings_pipeline.py) need probes and merges of
two parents. Nothing is guessed: a finding the archive cannot test is n/a with the reason, and a
row warns when its sizes have too few subsets for an interval. The thresholds that state each
claim are in THRESHOLDS and printed in the claim. p-values are adjusted over all rows of an
archive's table (Holm by default, Benjamini-Hochberg with --p-adjust bh), the method named in
the table; intervals are 95%, bootstraps seeded (--seed, printed with the table).

Every test here is over subsets (merges): a finding is about how merges behave across subsets.
The noise of the items within one merge (archive format 4's per-item outcomes) is the report's
"Paired over items" section (analysis/paired.py).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as sps

from . import intervals as iv
from . import stats
from .findings_pipeline import BETWEEN_SHARE, WEAK, method_table, parents_of, pipeline_findings
from .reader import Archive
from . import verdict
from .verdict import (ALPHA, NOISE, any_of, as_float, by_n_text, decide, few_warning, iut, na,
                      points, row, share_text)

THRESHOLDS = {
    "ta_beats_best_share": 0.30,     # share of subsets beating their best single, some n >= 4
    "ta_beats_best_min_n": 4,
    "degrading_below_ta_min_n": 6,   # TIES, TSV-M, Iso-C below TA at every n >= this
    "l2_auc": 0.8,                   # AUC of low L2 for "beats the base"
    "between_parents_share": BETWEEN_SHARE,  # "most merges" behave between their parents
    "weak_correlation": WEAK,        # |Spearman rho| below this is "weak"
}
DEGRADING = ("ties", "tsv_m", "iso_c", "task_arithmetic_sb", "ties_sb")
COLUMNS = verdict.COLUMNS  # the table's columns
DEFAULTS = {"seed": iv.SEED, "resamples": iv.RESAMPLES, "p_adjust": "holm"}


# --------------------------------------------------------------------------------------------
# inputs

def study_frames(archive: Archive, metric: str = "acc"):
    """(scores, gains, probes) of an archive: per-config mean accuracy (stats.config_scores),
    merges with gains, params and L2 (stats.merge_gains), and the probe rows (may be empty)."""
    configs, results = archive.configs, archive.results
    tasks = stats.benchmark_tasks(results, metric) if len(results) else []
    if not tasks:
        return None, None, None
    scores = stats.config_scores(configs, results, metric, tasks)
    gains = stats.merge_gains(scores, stats.higher_is_better(metric))
    gains["params"] = configs.set_index("id")["params"].reindex(gains.index).values
    ms = archive.model_stats
    if len(ms) and "l2_from_base" in ms:
        gains["l2"] = ms.groupby("config_id")["l2_from_base"].mean().reindex(gains.index)
    return scores, gains, archive.probes


# --------------------------------------------------------------------------------------------
# the systematic study: every finding tests each parameter point of its method (one row each)

S = "systematic"


def ta_constructive(g: pd.DataFrame, point: str, o: dict) -> dict:
    thr, min_n = THRESHOLDS["ta_beats_best_share"], THRESHOLDS["ta_beats_best_min_n"]
    claim = (f"Task Arithmetic beats the best single checkpoint of its subset (constructive "
             f"interference) in >= {thr:.0%} of subsets for some n >= {min_n}")
    big = g[(g["n"] >= min_n)].dropna(subset=["beats_best"])
    if len(big) == 0:
        return na(S, claim, point, f"no merge of this point with n >= {min_n}")
    per = big.groupby("n")["beats_best"].agg(["sum", "size"])
    ps = [iv.binom_p(k, m, thr, "greater") for k, m in zip(per["sum"], per["size"])]
    share = per["sum"] / per["size"]
    best = int(share.idxmax())
    k, m = int(per.loc[best, "sum"]), int(per.loc[best, "size"])
    his = [iv.wilson(int(a), int(b))[1] for a, b in zip(per["sum"], per["size"])]
    p = any_of(ps)
    txt = (f"best {share.max():.0%} at n={best} (Wilson {iv.LEVEL:.0%} {iv.fmt_ci(*iv.wilson(k, m), pct=True)}); "
           f"per n: " + ", ".join(f"n={int(n)}: {share_text(int(a), int(b))}" for n, a, b in
                                  zip(per.index, per["sum"], per["size"]))
           + f"; p = {iv.fmt_p(p)} (exact binomial, share > {thr:.0%}, Bonferroni over {len(ps)} sizes)")
    return row(S, claim, point, txt, holds=share.max() >= thr, against=all(h < thr for h in his), p=p,
               estimate=float(share.max()), ci=iv.wilson(k, m), warning=few_warning(big))


def ta_grows(g: pd.DataFrame, point: str, o: dict) -> dict:
    claim = "Task Arithmetic's mean gain over the base grows with n"
    d = g.dropna(subset=["gain_base"])
    if d["n"].nunique() < 2:
        return na(S, claim, point, "this point at fewer than two subset sizes")
    if d["gain_base"].nunique() < 2:
        return na(S, claim, point, "the gain does not vary")
    x = d["n"].astype(float)
    rho, p_up = (as_float(v) for v in sps.spearmanr(x, d["gain_base"], alternative="greater"))
    p_down = as_float(sps.spearmanr(x, d["gain_base"], alternative="less")[1])
    by = d.groupby("n")["gain_base"].mean().sort_index()
    ci = iv.spearman_ci(rho, len(d))
    txt = (f"Spearman rho(n, gain) = {rho:+.2f} {iv.fmt_ci(*ci, digits=2)} (one-sided p = {iv.fmt_p(p_up)}, "
           f"{len(d)} merges); mean gain {by_n_text(d, 'gain_base', o['seed'], o['resamples'])}")
    return row(S, claim, point, txt, holds=rho > 0 and by.iloc[-1] > by.iloc[0],
               against=rho < 0 and p_down < ALPHA, p=p_up, estimate=rho, ci=ci, warning=few_warning(d))


def ta_beats_base(gains: pd.DataFrame, g: pd.DataFrame, point: str, o: dict) -> dict:
    claim = "Task Arithmetic improves over the base in most subsets (the only method that does)"
    d = g.dropna(subset=["beats_base"])
    if len(d) == 0:
        return na(S, claim, point, "no merge of this point with a score and a base")
    k, m = int(d["beats_base"].sum()), len(d)
    p = iv.binom_p(k, m, 0.5, "greater")
    per = ", ".join(f"n={int(n)}: {int(x.sum())}/{len(x)}" for n, x in d.groupby("n")["beats_base"])
    others = gains[gains["method"] != "task_arithmetic"].dropna(subset=["beats_base"])
    key = "label" if "label" in others else "method"
    oth = {lab: (int(x.sum()), len(x)) for lab, x in others.groupby(key, sort=True)["beats_base"]}
    better = [lab for lab, (a, b) in oth.items() if a / b >= k / m]
    strong = [lab for lab, (a, b) in oth.items() if iv.binom_p(a, b, 0.5, "greater") < ALPHA]
    txt = (f"{k} of {m} merges beat the base ({k / m:.0%}, Wilson {iv.LEVEL:.0%} "
           f"{iv.fmt_ci(*iv.wilson(k, m), pct=True)}; {per}); p = {iv.fmt_p(p)} (exact binomial, share > 50%)")
    if oth:
        txt += "; others: " + ", ".join(f"{lab} {share_text(a, b)}" for lab, (a, b) in oth.items())
    if better:
        txt += f" (as good or better: {', '.join(better)})"
    lo, hi = iv.wilson(k, m)
    return row(S, claim, point, txt, holds=k / m > 0.5 and not better, against=hi < 0.5 or bool(strong), p=p,
               estimate=k / m, ci=(lo, hi), warning=few_warning(d))


def _below_ta(g: pd.DataFrame, ta_points, min_n: int):
    """Per TA point sharing sizes n >= min_n with g: (name, sizes, sizes below, p_less list, p_greater list)."""
    out = []
    for name, ta in ta_points:
        ns = sorted(set(g["n"][g["n"] >= min_n]) & set(ta["n"]))
        if not ns:
            continue
        a = {n: g.loc[g["n"] == n, "gain_base"] for n in ns}
        b = {n: ta.loc[ta["n"] == n, "gain_base"] for n in ns}
        below = [n for n in ns if a[n].mean() < b[n].mean()]
        out.append((name, ns, below, [iv.mwu_p(a[n], b[n], "less") for n in ns],
                    [iv.mwu_p(a[n], b[n], "greater") for n in ns]))
    return out


def degrades_with_n(gains: pd.DataFrame, g: pd.DataFrame, method: str, point: str, o: dict) -> dict:
    min_n = THRESHOLDS["degrading_below_ta_min_n"]
    claim = (f"{method}: mean gain over the base falls as n grows, and is below Task Arithmetic's "
             f"at every n >= {min_n}")
    d = g.dropna(subset=["gain_base"])
    if d["n"].nunique() < 2:
        return na(S, claim, point, f"{method} at fewer than two subset sizes")
    rho, p_down = (as_float(v) for v in sps.spearmanr(d["n"].astype(float), d["gain_base"], alternative="less"))
    p_up = as_float(sps.spearmanr(d["n"].astype(float), d["gain_base"], alternative="greater")[1])
    last = d[d["n"] == d["n"].max()]["beats_base"]
    txt = (f"Spearman rho(n, gain) = {rho:+.2f} (one-sided p = {iv.fmt_p(p_down)}); mean gain "
           f"{by_n_text(d, 'gain_base', o['seed'], o['resamples'])}; share beating the base at "
           f"n={int(d['n'].max())}: {share_text(int(last.sum()), len(last))}")
    cmp = _below_ta(d, points(gains, "task_arithmetic"), min_n)
    if not cmp:
        return na(S, claim, point, f"no size n >= {min_n} shared with task_arithmetic (measured: {txt})",
                  few_warning(d))
    warn = [few_warning(d)]
    for name, ns, below, pl, _ in cmp:
        txt += (f"; below {name} at {len(below)} of {len(ns)} sizes n >= {min_n} "
                f"(Mann-Whitney one-sided p max {iv.fmt_p(iut(pl))})")
        ta = dict(points(gains, "task_arithmetic"))[name]
        warn.append(few_warning(ta[ta["n"].isin(ns)], f"{name} subsets"))
    p = iut([p_down] + [q for c in cmp for q in c[3]])
    holds = rho < 0 and all(len(c[2]) == len(c[1]) for c in cmp)
    against = (rho > 0 and p_up < ALPHA) or any(q < ALPHA for c in cmp for q in c[4])
    return row(S, claim, point, txt + f"; p = {iv.fmt_p(p)} (largest of the trend and every size test)",
               holds=holds, against=against, p=p, estimate=rho, ci=iv.spearman_ci(rho, len(d)),
               warning="; ".join(w for w in warn if w))


def l2_predicts(gains: pd.DataFrame, o: dict) -> dict:
    thr = THRESHOLDS["l2_auc"]
    claim = (f"L2 distance from the base separates merges that beat the base from those that do not "
             f"(AUC of low L2 >= {thr})")
    point = "all merges (every method and parameter point)"
    if "l2" not in gains or gains["l2"].notna().sum() < 3:
        return na(S, claim, point, "no model_stats.l2_from_base for the merges")
    s = stats.l2_success(gains, o["seed"], o["resamples"])
    if s["successes"] in (0, s["merges"]):
        return na(S, claim, point, f"{s['successes']} of {s['merges']} merges beat the base: one class only")
    lo, hi = s["auc_lo"], s["auc_hi"]
    txt = (f"AUC = {s['auc_low_l2']:.3f} ({s['successes']} of {s['merges']} merges beat the base; stratified "
           f"bootstrap {iv.LEVEL:.0%} {iv.fmt_ci(lo, hi, signed=False)}, Mann-Whitney p = {iv.fmt_p(s['auc_p'])} "
           f"against AUC 0.5); Spearman rho(L2, gain) = {s['spearman_rho']:+.2f} (p = {iv.fmt_p(s['spearman_p'])}); "
           f"best split: L2 < {s['threshold_l2']:.4g} classifies {s['threshold_accuracy']:.0%}")
    fewer = min(s["successes"], s["merges"] - s["successes"])
    warn = (f"only {fewer} merges in one class (beat the base or not): too few for a reliable interval "
            f"(want >= {iv.MIN_PER_SIZE})") if fewer < iv.MIN_PER_SIZE else ""
    return row(S, claim, point, txt, holds=lo >= thr, against=hi < thr, p=s["auc_p"],
               estimate=s["auc_low_l2"], ci=(lo, hi), warning=warn)


def systematic_findings(gains: pd.DataFrame, o: dict | None = None) -> list[dict]:
    """Rows (verdict.row) of the systematic study; call verdict.decide on them for the verdicts."""
    o = {**DEFAULTS, **(o or {})}
    ta = points(gains, "task_arithmetic")
    rows = []
    if not ta:
        why = "no task_arithmetic merges"
        rows += [na(S, c, "task_arithmetic", why) for c in (
            "Task Arithmetic beats the best single checkpoint of its subset (constructive interference)",
            "Task Arithmetic's mean gain over the base grows with n",
            "Task Arithmetic improves over the base in most subsets (the only method that does)")]
    rows += [ta_constructive(g, name, o) for name, g in ta]
    rows += [ta_grows(g, name, o) for name, g in ta]
    rows += [ta_beats_base(gains, g, name, o) for name, g in ta]
    for m in DEGRADING:
        pts = points(gains, m)
        if not pts and m in DEGRADING[:3]:
            rows.append(na(S, f"{m}: mean gain over the base falls as n grows, and is below Task "
                              f"Arithmetic's at every n >= {THRESHOLDS['degrading_below_ta_min_n']}",
                           m, f"no {m} merges"))
        rows += [degrades_with_n(gains, g, m, name, o) for name, g in pts]
    rows.append(l2_predicts(gains, o))
    return rows


# --------------------------------------------------------------------------------------------
# the table

def findings(archive: Archive, metric: str = "acc", **opts) -> pd.DataFrame:
    """Every finding the archive can speak to, one row per finding and parameter point (COLUMNS),
    p-values adjusted over the table, verdicts decided (verdict.decide)."""
    o = {**DEFAULTS, **opts}
    scores, gains, probes = study_frames(archive, metric)
    if scores is None:
        return decide([na("both", "any finding", "", f"no committed results with metric '{metric}'")])
    rows = []
    multi = gains[gains["n"] >= 2].groupby("method")["n"].nunique()
    if len(multi) and multi.max() >= 2:  # some method at two subset sizes: a systematic study
        rows += systematic_findings(gains, o)
    if probes is not None and len(probes) and len(parents_of(scores)):
        rows += pipeline_findings(scores, probes, o)
    if not rows:
        rows.append(na("both", "any finding", "", "merges of one subset size and no probes"))
    return decide(rows, o["p_adjust"])


def findings_text(archive: Archive, metric: str = "acc", **opts) -> str:
    o = {**DEFAULTS, **opts}
    tab = findings(archive, metric, **o)
    lines = [f"Findings of the studies in {archive.path} ({archive.n_configs} configs, metric {metric}):"]
    for _, r in tab.iterrows():
        lines.append(f"[{r['reproduced']:>3}] {r['study']}: {r['finding']}")
        if r["point"]:
            lines.append(f"      tests: {r['point']}")
        lines.append(f"      measured: {r['measured']}")
        if r["p_adj"] == r["p_adj"]:
            lines.append(f"      p = {iv.fmt_p(r['p'])}, {r['p_adjust']}-adjusted {iv.fmt_p(r['p_adj'])}")
        if r["reproduced"] == "noise":
            lines.append(f"      verdict: {NOISE}")
        if r["warning"]:
            lines.append(f"      warning: {r['warning']}")
    count = tab["reproduced"].value_counts()
    n_test = int((tab["reproduced"] != "n/a").sum())
    lines.append(f"{count.get('yes', 0)} of {n_test} testable findings reproduced, {count.get('no', 0)} not, "
                 f"{count.get('noise', 0)} {NOISE}; p-values {tab['p_adjust'].iloc[0]}-adjusted over the "
                 f"{int(tab['p'].notna().sum())} tests of this table; {iv.LEVEL:.0%} intervals, bootstrap seed "
                 f"{o['seed']} ({o['resamples']} resamples).")
    scores, _, probes = study_frames(archive, metric)
    if probes is not None and len(probes) and len(parents_of(scores)):
        lines.append("")
        lines.append("Behaviour vs internals per method point (merges with both parents in the archive):")
        lines.append(_plain_table(method_table(scores, probes)))
    return "\n".join(lines)


def _plain_table(df: pd.DataFrame) -> str:
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return "" if math.isnan(v) else f"{v:.3g}"
        return str(v)
    cols = list(df.columns)
    cells = [[cell(r[c]) for c in cols] for _, r in df.iterrows()]
    width = [max([len(c)] + [len(row_[j]) for row_ in cells]) for j, c in enumerate(cols)]
    out = ["  ".join(c.rjust(w) for c, w in zip(cols, width))]
    out += ["  ".join(v.rjust(w) for v, w in zip(row_, width)) for row_ in cells]
    return "\n".join(out)


def run(paths, metric: str = "acc", out: str | None = None, **opts) -> str:
    """The text for every archive; with `out`, findings.csv (and methods.csv) per archive there."""
    import os

    from .reader import read_archive

    texts = []
    for p in paths:
        a = read_archive(p)
        texts.append(findings_text(a, metric, **opts))
        if out:
            os.makedirs(out, exist_ok=True)
            stem = os.path.splitext(os.path.basename(p))[0]
            findings(a, metric, **opts).to_csv(os.path.join(out, f"{stem}-findings.csv"), index=False)
            scores, _, probes = study_frames(a, metric)
            if scores is not None and probes is not None and len(probes):
                method_table(scores, probes).to_csv(os.path.join(out, f"{stem}-methods.csv"), index=False)
    return "\n\n".join(texts)
