"""Plain NumPy reference of the merge methods mergekit does not have (and of two variants),
written straight from the formulas in docs/methods.md: slow, obvious, float64 throughout.
Used only to make fixtures (tests/fixtures/merge/make_reference_fixtures.py)."""
import numpy as np


def svd(m):
    return np.linalg.svd(m, full_matrices=False)


def polar(m):
    u, _, vh = svd(m)
    return u @ vh


def spectral_tensor(name, a):
    return a.ndim == 2 and "embed_tokens" not in name and "lm_head" not in name


def boosted_tensor(name):
    return any(p in name for p in (".self_attn.q_proj.weight", ".self_attn.k_proj.weight", ".self_attn.v_proj.weight",
                                   ".self_attn.o_proj.weight", ".mlp.gate_proj.weight", ".mlp.up_proj.weight",
                                   ".mlp.down_proj.weight"))


def tsv_m(name, base, taus, alpha=1.0):
    if not spectral_tensor(name, base):
        return base + alpha * np.mean(taus, axis=0)
    m, n = base.shape
    r, t = min(m, n), len(taus)
    k = r // t
    u_cat, s_cat, vh_cat = np.zeros((m, r)), np.zeros(r), np.zeros((r, n))
    for i, tau in enumerate(taus):
        u, s, vh = svd(tau)
        u_cat[:, i * k:(i + 1) * k] = u[:, :k]
        s_cat[i * k:(i + 1) * k] = s[:k]
        vh_cat[i * k:(i + 1) * k, :] = vh[:k, :]
    return base + alpha * (polar(u_cat) @ np.diag(s_cat) @ polar(vh_cat))


def iso_c(name, base, taus, alpha=1.0):
    if not spectral_tensor(name, base):
        return base + alpha * np.mean(taus, axis=0)
    u, s, vh = svd(np.sum(taus, axis=0))
    return base + alpha * s.mean() * (u @ vh)


def iso_cts(name, base, taus, alpha=1.0, common_fraction=0.8):
    if not spectral_tensor(name, base):
        return base + alpha * np.mean(taus, axis=0)
    r, t = min(base.shape), len(taus)
    c = int(np.floor(common_fraction * r))
    t_tot = int(np.round((r - c) / t)) * t  # numpy rounds half to even
    c = r - t_tot
    p = t_tot // t
    u, s, vh = svd(np.sum(taus, axis=0))
    uc, sc, vhc = u[:, :c], s[:c], vh[:c, :]
    us, ss, vhs = [], [], []
    for tau in taus:
        ui, si, vhi = svd(tau - uc @ (uc.T @ tau))
        us.append(ui[:, :p]); ss.append(si[:p]); vhs.append(vhi[:p, :])
    us.append(uc); ss.append(sc); vhs.append(vhc)
    u_all, vh_all = polar(np.concatenate(us, axis=1)), polar(np.concatenate(vhs, axis=0))
    return base + alpha * np.concatenate(ss).mean() * (u_all @ vh_all)


def boost(delta, beta):
    u, s, vh = svd(delta)
    if s.sum() == 0:
        return delta
    c = np.cumsum(s) / s.sum()
    hits = np.nonzero(c >= beta)[0]
    j = hits[0] if len(hits) else len(s) - 1
    return u @ np.diag(np.maximum(s, s[j])) @ vh


def trim_top_k(tau, density):
    """Keeps max(1, floor(density * n)) largest magnitudes; ties by index (first kept)."""
    flat = tau.reshape(-1)
    k = max(1, int(density * flat.size))
    if density >= 1 or k >= flat.size:
        return tau.copy()
    keep = np.argsort(-np.abs(flat), kind="stable")[:k]
    out = np.zeros_like(flat)
    out[keep] = flat[keep]
    return out.reshape(tau.shape)


def ties_parts(taus, weights, densities, normalize=True):
    """(raw sum, divisor) of TIES with mergekit's weighted sign election."""
    w = np.array(weights).reshape((-1,) + (1,) * taus[0].ndim)
    d = np.stack([trim_top_k(t, dn) for t, dn in zip(taus, densities)]) * w
    gamma = np.where(d.sum(axis=0) >= 0, 1.0, -1.0)
    agree = np.sign(d) == gamma
    raw = (d * agree).sum(axis=0)
    if not normalize:
        return raw, np.ones_like(raw)
    div = (w * agree).sum(axis=0)
    return raw, np.where(div == 0, 1.0, div)


def ta_parts(taus, weights, normalize=False):
    raw = sum(w * t for w, t in zip(weights, taus))
    return raw, (np.full_like(raw, sum(weights)) if normalize else np.ones_like(raw))


def with_boost(name, base, parts, lam, beta, order):
    raw, div = parts
    if not boosted_tensor(name) or raw.ndim != 2:
        return base + lam * raw / div
    if order == "oct2025":
        return base + boost(lam * raw / div, beta)
    return base + lam * boost(raw, beta) / div


def ties_global(names, base, taus_by_model, densities, lam=1.0):
    """Original TIES: thresholds over the whole model, unweighted election with the model's
    majority sign for zeros, mean over agreeing entries. Returns {name: merged}."""
    thresholds = []
    for taus, dn in zip(taus_by_model, densities):
        flat = np.concatenate([np.abs(taus[n]).reshape(-1) for n in names])
        keep = int(dn * flat.size)
        kth = np.sort(flat)[flat.size - keep - 1] if keep < flat.size else 0.0  # kthvalue(P - keep), 1-based
        thresholds.append(kth)
    trimmed = [{n: taus[n] * (np.abs(taus[n]) >= th) for n in names} for taus, th in zip(taus_by_model, thresholds)]
    total_sign = sum(np.sign(sum(tr[n] for tr in trimmed)).sum() for n in names)
    majority = 1.0 if total_sign >= 0 else -1.0
    out = {}
    for n in names:
        stacked = np.stack([tr[n] for tr in trimmed])
        gamma = np.sign(stacked.sum(axis=0))
        gamma = np.where(gamma == 0, majority, gamma)
        keep = np.where(gamma > 0, stacked > 0, stacked < 0)
        merged = (stacked * keep).sum(axis=0) / np.maximum(keep.sum(axis=0), 1)
        out[n] = base[n] + lam * merged
    return out


def model_stock_angle(base, taus):
    n = len(taus)
    flat = [t.reshape(-1) for t in taus]
    angles, zero = [], False
    for j in range(n):
        for k in range(j + 1, n):
            nj, nk = np.linalg.norm(flat[j]), np.linalg.norm(flat[k])
            zero = zero or nj == 0 or nk == 0
            cos = np.clip(flat[j] @ flat[k] / max(nj * nk, 1e-6), -1, 1)
            angles.append(np.arccos(cos))
    cos = np.cos(np.mean(angles))
    t = 0.0 if zero else n * cos / ((n - 1) * cos + 1 + 1e-8)
    return base + t * np.mean(taus, axis=0)
