"""The report's figures as PNG (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def accuracy_vs_n(table: pd.DataFrame, base_score: float, path: str, value: str = "acc",
                  ylabel: str = "mean accuracy over tasks") -> str:
    """One line per method: mean over the subsets of each size n, with a band for the 95%
    bootstrap interval of that mean (columns VALUE_lo/_hi; ± one std where the table has none);
    the base as a dashed line."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, g in table.groupby("method", sort=True):
        g = g.sort_values("n")
        mu = g[f"{value}_mean"].to_numpy(float)
        if f"{value}_lo" in g:
            lo, hi = g[f"{value}_lo"].to_numpy(float), g[f"{value}_hi"].to_numpy(float)
        else:
            sd = np.nan_to_num(g[f"{value}_std"].to_numpy(float))
            lo, hi = mu - sd, mu + sd
        line, = ax.plot(g["n"], mu, marker="o", label=method)
        ax.fill_between(g["n"], lo, hi, color=line.get_color(), alpha=0.15)
    if base_score == base_score and value == "acc":
        ax.axhline(base_score, color="k", ls="--", lw=1, label="base")
    if value != "acc":
        ax.axhline(0, color="k", ls="--", lw=1)
    ax.set_xlabel("checkpoints merged (n)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def share_vs_n(table: pd.DataFrame, path: str, value: str = "share_beats_base",
               ylabel: str = "share of subsets beating the base") -> str:
    """One line per method: the share at each n with its Wilson 95% interval as error bars
    (columns VALUE, VALUE_lo, VALUE_hi); methods slightly offset along n so bars do not overlap."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups = list(table.groupby("method", sort=True))
    for j, (method, g) in enumerate(groups):
        g = g.sort_values("n")
        x = g["n"].to_numpy(float) + 0.08 * (j - (len(groups) - 1) / 2)
        y = g[value].to_numpy(float)
        err = np.vstack([y - g[f"{value}_lo"].to_numpy(float), g[f"{value}_hi"].to_numpy(float) - y])
        ax.errorbar(x, y, yerr=np.nan_to_num(err), marker="o", capsize=3, label=method)
    ax.axhline(0.5, color="k", ls=":", lw=1)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("checkpoints merged (n)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def l2_vs_gain(gains: pd.DataFrame, path: str, threshold: float | None = None) -> str:
    """Every merge: L2 from the base (log scale) against its gain over the base."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    d = gains.dropna(subset=["l2", "gain_base"])
    d = d[d["l2"] > 0]
    for method, g in d.groupby("label", sort=True):
        ax.scatter(g["l2"], g["gain_base"], s=14, alpha=0.7, label=method)
    ax.axhline(0, color="k", lw=1, ls="--")
    if threshold is not None and threshold == threshold and threshold > 0:
        ax.axvline(threshold, color="grey", lw=1, ls=":", label=f"best split L2={threshold:.3g}")
    if len(d):
        ax.set_xscale("log")
    ax.set_xlabel("L2 distance from the base")
    ax.set_ylabel("gain over the base (mean accuracy)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def correlation_heatmap(corr: pd.DataFrame, path: str, value: str = "spearman_rho",
                        title: str = "") -> str:
    """Probe task (rows) by layer (columns), colour = correlation with benchmark accuracy."""
    piv = corr.pivot_table(index="probe", columns="layer", values=value, aggfunc="mean")
    fig, ax = plt.subplots(figsize=(max(5, 0.45 * piv.shape[1] + 3), max(3, 0.35 * piv.shape[0] + 1.5)))
    im = ax.imshow(piv.to_numpy(float), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(piv.shape[1]))
    ax.set_xticklabels([str(c) for c in piv.columns], fontsize=8)
    ax.set_yticks(range(piv.shape[0]))
    ax.set_yticklabels(piv.index, fontsize=8)
    ax.set_xlabel("layer")
    ax.set_title(title or value, fontsize=10)
    fig.colorbar(im, ax=ax, label=value)
    return _save(fig, path)
