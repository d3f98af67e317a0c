"""Plain NumPy reference for mergesweep's merge methods.

Written from the formulas in the project's merge-methods notes (the math each reference computes),
not from any implementation. Slow and obvious on purpose: loops over tensors, full SVDs, no
shortcuts. Used by tests/fixtures/merge/make_reference_fixtures.py.

Conventions
  * A model is a dict  tensor name -> float32 ndarray  (as stored in model.safetensors).
  * Task vectors are formed exactly as the references form them: tau_i = theta_i - theta_0 as a
    float32 subtraction, then upcast. Everything after that is computed in `dtype` (default float64;
    pass np.float32 to see float32 round-off). Every method returns float32 tensors unless
    out_dtype says otherwise.
  * Parameter names follow mergesweep's: weights, densities, lam (lambda), normalize, t, filter_wise,
    cosine_mean ("cosine" | "angle"), trim ("per_tensor" | "global"), alpha, common_fraction, beta,
    sb_order ("oct2025" | "jan2026").
  * Where a result is not uniquely defined (a top-k cut through equal magnitudes, a rank-deficient
    SVD input, a Model Stock denominator at its pole, a Subspace Boosting cut exactly at beta), the
    functions raise IllPosed instead of picking an arbitrary answer.
"""
import math
import os

import numpy as np

SB_PATTERNS = (".self_attn.q_proj.weight", ".self_attn.k_proj.weight", ".self_attn.v_proj.weight",
               ".self_attn.o_proj.weight", ".mlp.gate_proj.weight", ".mlp.up_proj.weight", ".mlp.down_proj.weight")


class IllPosed(ValueError):
    """The inputs sit where the method's result is not uniquely defined."""


# ----------------------------------------------------------------------------------------------
# I/O and helpers
# ----------------------------------------------------------------------------------------------
def load_model(path):
    """{name: float32 array} from <path>/model.safetensors (or a .safetensors file)."""
    from safetensors.numpy import load_file
    f = path if path.endswith(".safetensors") else os.path.join(path, "model.safetensors")
    return {k: np.asarray(v) for k, v in load_file(f).items()}


def task_vector(base, model, name, dtype):
    return (model[name].astype(np.float32) - base[name].astype(np.float32)).astype(dtype)


def _out(result, out_dtype):
    return {k: np.ascontiguousarray(v.astype(out_dtype)) for k, v in result.items()}


def svd(a):
    """Thin SVD a = U diag(s) Vh, s descending."""
    return np.linalg.svd(a, full_matrices=False)


def polar(a):
    """Orthogonal polar factor P Q^T of a = P S Q^T (thin SVD)."""
    p, _, qt = svd(a)
    return p @ qt


def is_svd_merged(name, t):
    """TSV-M / Iso: 2-D tensors except embeddings and lm_head (the study's fork); others get the mean."""
    return t.ndim == 2 and "embed_tokens" not in name and "lm_head" not in name


def is_boosted(name, t):
    return t.ndim == 2 and any(p in name for p in SB_PATTERNS)


# ----------------------------------------------------------------------------------------------
# Linear, SLERP, Task Arithmetic
# ----------------------------------------------------------------------------------------------
def linear(models, weights, normalize=True, dtype=np.float64, out_dtype=np.float32):
    out = {}
    for name in models[0]:
        acc = np.zeros(models[0][name].shape, dtype)
        for w, m in zip(weights, models):
            acc = acc + dtype(w) * m[name].astype(dtype)
        if normalize:
            acc = acc / dtype(sum(weights))
        out[name] = acc
    return _out(out, out_dtype)


def slerp(base, model, t, granularity="tensor", dot_threshold=0.9995, eps=1e-8, dtype=np.float64,
          out_dtype=np.float32):
    """t = 0 gives the base. granularity "tensor": one angle per flattened tensor; "row": one per
    output row (only to show which one a reference uses)."""
    out = {}
    for name in base:
        a0 = base[name].astype(dtype)
        b0 = model[name].astype(dtype)
        rows = a0.reshape(a0.shape[0], -1) if (granularity == "row" and a0.ndim >= 2) else a0.reshape(1, -1)
        other = b0.reshape(rows.shape)
        res = np.empty_like(rows)
        for r in range(rows.shape[0]):
            a, b = rows[r], other[r]
            na, nb = np.linalg.norm(a), np.linalg.norm(b)
            na = na if na > eps else 1.0
            nb = nb if nb > eps else 1.0
            dot = float(np.clip(np.dot(a / na, b / nb), -1.0, 1.0))
            if abs(dot) > dot_threshold:
                res[r] = (1 - t) * a + t * b
            else:
                omega = math.acos(dot)
                res[r] = math.sin((1 - t) * omega) / math.sin(omega) * a + math.sin(t * omega) / math.sin(omega) * b
        out[name] = res.reshape(a0.shape)
    return _out(out, out_dtype)


def ta_parts(base, models, weights, normalize, dtype):
    """Per tensor: (sum_i w_i tau_i, divisor) with divisor = sum_i w_i when normalize, else 1."""
    parts = {}
    for name in base:
        raw = np.zeros(base[name].shape, dtype)
        for w, m in zip(weights, models):
            raw = raw + dtype(w) * task_vector(base, m, name, dtype)
        div = dtype(sum(weights)) if normalize else dtype(1)
        if div == 0:
            raise IllPosed("normalize with weights summing to zero")
        parts[name] = (raw, div)
    return parts


def task_arithmetic(base, models, weights, lam=1.0, normalize=False, dtype=np.float64, out_dtype=np.float32):
    """theta_0 + lam * sum_i w_i tau_i (divided by sum_i w_i when normalize)."""
    out = {}
    for name, (raw, div) in ta_parts(base, models, weights, normalize, dtype).items():
        out[name] = base[name].astype(dtype) + dtype(lam) * (raw / div)
    return _out(out, out_dtype)


# ----------------------------------------------------------------------------------------------
# TIES
# ----------------------------------------------------------------------------------------------
def trim_top_k(tau, density):
    """Keeps exactly floor(density * numel) entries of largest |tau|, zeroes the rest, no rescale.
    Raises IllPosed when the cut passes through equal nonzero magnitudes."""
    flat = tau.reshape(-1)
    n = flat.size
    k = int(math.floor(density * n))
    if k >= n:
        return tau.copy()
    mag = np.abs(flat)
    order = np.argsort(-mag, kind="stable")
    if k > 0 and mag[order[k - 1]] == mag[order[k]] and mag[order[k]] > 0:
        raise IllPosed(f"top-{k} of {n} cuts through equal magnitudes {mag[order[k]]!r}")
    keep = np.zeros(n, dtype=bool)
    keep[order[:k]] = True
    return np.where(keep, flat, 0).reshape(tau.shape)


def global_thresholds(base, models, densities, dtype):
    """Original TIES: per task, one magnitude threshold over all tensors flattened together.
    P = total entries, keep = floor(density * P); threshold = the (P - keep)-th smallest |tau|
    (1-based) and the mask is |tau| >= threshold (ties at the threshold kept). Without ties this keeps
    keep + 1 entries: the 'k-th value' of the notes read with k = P - keep, as the paper's code does."""
    thr = []
    for m, d in zip(models, densities):
        mags = np.concatenate([np.abs(task_vector(base, m, name, dtype)).reshape(-1) for name in base])
        p = mags.size
        keep = int(math.floor(d * p))
        if keep >= p:
            thr.append(dtype(0))
            continue
        thr.append(np.sort(mags)[p - keep - 1])  # (p - keep)-th smallest, 1-based
    return thr


def ties_parts(base, models, weights, densities, normalize=True, trim="per_tensor", dtype=np.float64):
    """Per tensor: (numerator, divisor); the merged task vector is numerator / divisor.

    per_tensor (mergekit semantics): trim each tau_i per tensor; gamma = +1 where sum_i w_i tau^_i >= 0
    else -1; m_i = [sign(w_i tau^_i) == gamma] (trimmed zeros never match); numerator = sum_i w_i m_i
    tau^_i; divisor = sum_i w_i m_i (0 -> 1) with normalize, else 1.
    global ("original TIES"): global trim; gamma = sign(sum_i tau^_i) with gamma = 0 set to the sign of
    sum(gamma) over the whole model (+1 if that is 0); disjoint mean sum / max(count, 1). Weights and
    normalize do not enter this variant."""
    parts = {}
    if trim == "per_tensor":
        for name in base:
            hats = [trim_top_k(task_vector(base, m, name, dtype), d) for m, d in zip(models, densities)]
            weighted = [dtype(w) * h for w, h in zip(weights, hats)]
            s = sum(weighted)
            gamma = np.where(s >= 0, 1.0, -1.0).astype(dtype)
            num = np.zeros(s.shape, dtype)
            div = np.zeros(s.shape, dtype)
            for w, wh in zip(weights, weighted):
                match = np.sign(wh) == gamma
                num = num + np.where(match, wh, 0)
                div = div + np.where(match, dtype(w), 0)
            if normalize:
                div = np.where(div == 0, dtype(1), div)
            else:
                div = np.ones_like(div)
            parts[name] = (num, div)
        return parts
    if trim != "global":
        raise ValueError(trim)
    thr = global_thresholds(base, models, densities, dtype)
    hats = {}
    sign_total = 0.0
    for name in base:
        hats[name] = []
        for m, th in zip(models, thr):
            tau = task_vector(base, m, name, dtype)
            hats[name].append(np.where(np.abs(tau) >= th, tau, 0))
        sign_total += float(np.sign(sum(hats[name])).sum())
    fallback = 1.0 if sign_total >= 0 else -1.0
    for name in base:
        g = np.sign(sum(hats[name]))
        g = np.where(g == 0, fallback, g)
        total = np.zeros(g.shape, dtype)
        count = np.zeros(g.shape, dtype)
        for h in hats[name]:
            match = np.sign(h) == g
            total = total + np.where(match, h, 0)
            count = count + match
        parts[name] = (total / np.maximum(count, 1), np.ones(g.shape, dtype))
    return parts


def ties(base, models, weights, densities, lam=1.0, normalize=True, trim="per_tensor", dtype=np.float64,
         out_dtype=np.float32):
    out = {}
    for name, (num, div) in ties_parts(base, models, weights, densities, normalize, trim, dtype).items():
        out[name] = base[name].astype(dtype) + dtype(lam) * (num / div)
    return _out(out, out_dtype)


# ----------------------------------------------------------------------------------------------
# DARE with given keep-masks (the masks are inputs: the draw itself is random)
# ----------------------------------------------------------------------------------------------
def dare(base, models, weights, densities, masks, consensus, lam=1.0, normalize=False, rescale="l1",
         dtype=np.float64, out_dtype=np.float32):
    """masks[i][name]: 1 = kept. rescale: "inverse_density" (x 1/density, the notes), "l1" (x ||tau||_1 /
    ||m tau||_1, left unscaled when either norm is below 1e-7), "none". consensus: "ties" (TIES sign
    election and disjoint merge on the dropped deltas) or "linear" (weighted sum)."""
    out = {}
    for name in base:
        dropped = []
        for i, (m, d) in enumerate(zip(models, densities)):
            tau = task_vector(base, m, name, dtype)
            kept = tau * masks[i][name].astype(dtype)
            if rescale == "inverse_density":
                kept = kept / dtype(d)
            elif rescale == "l1":
                before, after = np.abs(tau).sum(), np.abs(kept).sum()
                if before >= 1e-7 and after >= 1e-7:
                    kept = kept * (before / after)
            elif rescale != "none":
                raise ValueError(rescale)
            dropped.append(dtype(weights[i]) * kept)
        if consensus == "ties":
            s = sum(dropped)
            gamma = np.where(s >= 0, 1.0, -1.0)
            num = np.zeros(s.shape, dtype)
            div = np.zeros(s.shape, dtype)
            for w, wd in zip(weights, dropped):
                match = np.sign(wd) == gamma
                num = num + np.where(match, wd, 0)
                div = div + np.where(match, dtype(w), 0)
            div = np.where(div == 0, dtype(1), div)
        elif consensus == "linear":
            num = sum(dropped)
            div = dtype(sum(weights))
        else:
            raise ValueError(consensus)
        delta = num / div if normalize else num
        out[name] = base[name].astype(dtype) + dtype(lam) * delta
    return _out(out, out_dtype)


# ----------------------------------------------------------------------------------------------
# Model Stock
# ----------------------------------------------------------------------------------------------
def model_stock_ratio(taus, cosine_mean="cosine"):
    """taus: list of 1-D task vectors (one tensor, or one row). Returns t."""
    n = len(taus)
    if n < 2:
        raise ValueError("Model Stock needs at least two models")
    cosines = []
    for j in range(n):
        for k in range(j + 1, n):
            denom = max(np.linalg.norm(taus[j]) * np.linalg.norm(taus[k]), 1e-6)
            cosines.append(float(np.clip(np.dot(taus[j], taus[k]) / denom, -1.0, 1.0)))
    if cosine_mean == "cosine":
        c = sum(cosines) / len(cosines)
        den = 1 + (n - 1) * c
        if abs(den) < 1e-6:
            raise IllPosed("Model Stock denominator at its pole")
        return n * c / den
    if cosine_mean == "angle":
        if any(np.linalg.norm(t) == 0 for t in taus):
            return 0.0
        c = math.cos(sum(math.acos(x) for x in cosines) / len(cosines))
        return n * c / ((n - 1) * c + 1 + 1e-8)
    raise ValueError(cosine_mean)


def model_stock(base, models, filter_wise=False, cosine_mean="cosine", dtype=np.float64, out_dtype=np.float32,
                ratios=None):
    """theta = t * mean(theta_i) + (1 - t) * theta_0, t from the pairwise cosines of the task vectors,
    per tensor (flattened) or, with filter_wise, per output row of a 2-D tensor (a 1-D tensor stays one
    vector). Per-model weights do not enter."""
    out = {}
    for name in base:
        b = base[name].astype(dtype)
        shape = b.shape
        rows = (lambda x: x.reshape(shape[0], -1)) if (filter_wise and b.ndim >= 2) else (lambda x: x.reshape(1, -1))
        taus = [rows(task_vector(base, m, name, dtype)) for m in models]
        mean = sum(m[name].astype(dtype) for m in models) / dtype(len(models))
        mean_r, b_r = rows(mean), rows(b)
        res = np.empty_like(b_r)
        for r in range(b_r.shape[0]):
            t = model_stock_ratio([tau[r] for tau in taus], cosine_mean)
            if ratios is not None:
                ratios.setdefault(name, []).append(t)
            res[r] = t * mean_r[r] + (1 - t) * b_r[r]
        out[name] = res.reshape(shape)
    return _out(out, out_dtype)


# ----------------------------------------------------------------------------------------------
# TSV-M, Iso-C, Iso-CTS
# ----------------------------------------------------------------------------------------------
def tsv_m_factors(taus):
    """For one 2-D tensor: (U_orth, s_cat, Vh_orth) with delta = U_orth diag(s_cat) Vh_orth."""
    m, n = taus[0].shape
    r = min(m, n)
    T = len(taus)
    k = r // T
    if k == 0:
        raise IllPosed(f"rank {r} < {T} tasks")
    dt = taus[0].dtype
    u_cat = np.zeros((m, r), dt)
    s_cat = np.zeros(r, dt)
    vh_cat = np.zeros((r, n), dt)
    for i, tau in enumerate(taus):
        u, s, vh = svd(tau)
        u_cat[:, i * k:(i + 1) * k] = u[:, :k]
        s_cat[i * k:(i + 1) * k] = s[:k]
        vh_cat[i * k:(i + 1) * k, :] = vh[:k, :]
    return polar(u_cat), s_cat, polar(vh_cat)


def tsv_m(base, models, alpha=1.0, dtype=np.float64, out_dtype=np.float32):
    """Weights do not enter. Non-SVD tensors (1-D, embed_tokens, lm_head): mean of tau_i. theta_0 + alpha*delta."""
    out = {}
    for name in base:
        taus = [task_vector(base, m, name, dtype) for m in models]
        if is_svd_merged(name, base[name]):
            u, s, vh = tsv_m_factors(taus)
            delta = (u * s) @ vh
        else:
            delta = sum(taus) / dtype(len(taus))
        out[name] = base[name].astype(dtype) + dtype(alpha) * delta
    return _out(out, out_dtype)


def iso_c_delta(taus):
    """Sum of task vectors, spectrum replaced by its mean: mean(sigma) * U Vh."""
    u, s, vh = svd(sum(taus))
    return s.mean() * (u @ vh)


def iso_c(base, models, alpha=1.0, dtype=np.float64, out_dtype=np.float32):
    out = {}
    for name in base:
        taus = [task_vector(base, m, name, dtype) for m in models]
        delta = iso_c_delta(taus) if is_svd_merged(name, base[name]) else sum(taus) / dtype(len(taus))
        out[name] = base[name].astype(dtype) + dtype(alpha) * delta
    return _out(out, out_dtype)


def iso_cts_split(r, T, common_fraction=0.8):
    """(c, p): common rank and per-task rank."""
    c = int(math.floor(common_fraction * r))
    t_tot = round((r - c) / T) * T  # Python's round: half to even
    c = r - t_tot
    p = t_tot // T
    return c, p


def iso_cts_delta(taus, common_fraction=0.8):
    m, n = taus[0].shape
    r = min(m, n)
    T = len(taus)
    c, p = iso_cts_split(r, T, common_fraction)
    u, s, vh = svd(sum(taus))
    uc, sc, vhc = u[:, :c], s[:c], vh[:c, :]
    us, ss, vhs = [], [], []
    for tau in taus:
        resid = tau - uc @ (uc.T @ tau)
        ut, st, vht = svd(resid)
        us.append(ut[:, :p])
        ss.append(st[:p])
        vhs.append(vht[:p, :])
    u_stack = np.concatenate(us + [uc], axis=1)
    s_stack = np.concatenate(ss + [sc])
    vh_stack = np.concatenate(vhs + [vhc], axis=0)
    return s_stack.mean() * (polar(u_stack) @ polar(vh_stack))


def iso_cts(base, models, alpha=1.0, common_fraction=0.8, dtype=np.float64, out_dtype=np.float32):
    """Non-SVD tensors get the mean of tau_i, as in Iso-C."""
    out = {}
    for name in base:
        taus = [task_vector(base, m, name, dtype) for m in models]
        if is_svd_merged(name, base[name]):
            delta = iso_cts_delta(taus, common_fraction)
        else:
            delta = sum(taus) / dtype(len(taus))
        out[name] = base[name].astype(dtype) + dtype(alpha) * delta
    return _out(out, out_dtype)


# ----------------------------------------------------------------------------------------------
# Subspace Boosting
# ----------------------------------------------------------------------------------------------
def boost_cut(s, beta):
    """Index j* = first j with cumsum(s)_j / sum(s) >= beta (the last index if none)."""
    c = np.cumsum(s) / s.sum()
    hit = np.nonzero(c >= beta)[0]
    return int(hit[0]) if hit.size else len(s) - 1, c


def subspace_boost(mat, beta, margin=1e-6):
    """U diag(max(sigma_j, sigma_j*)) Vh. Raises IllPosed when a cumulative share is within `margin`
    of beta (the cut would depend on round-off)."""
    u, s, vh = svd(mat)
    if s.sum() == 0:
        return mat.copy()
    j, c = boost_cut(s, beta)
    if np.min(np.abs(c - beta)) < margin:
        raise IllPosed("Subspace Boosting cut within round-off of beta")
    return (u * np.maximum(s, s[j])) @ vh


def _with_boost(base, parts, lam, beta, sb_order, dtype):
    out = {}
    for name, (raw, div) in parts.items():
        b = base[name].astype(dtype)
        if not is_boosted(name, base[name]):
            out[name] = b + dtype(lam) * (raw / div)
        elif sb_order == "oct2025":  # normalize -> x lambda -> boost
            out[name] = b + subspace_boost(dtype(lam) * (raw / div), beta)
        elif sb_order == "jan2026":  # boost -> normalize -> x lambda
            out[name] = b + dtype(lam) * (subspace_boost(raw, beta) / div)
        else:
            raise ValueError(sb_order)
    return out


def task_arithmetic_sb(base, models, weights, lam=1.0, normalize=False, beta=0.2, sb_order="oct2025",
                       dtype=np.float64, out_dtype=np.float32):
    parts = ta_parts(base, models, weights, normalize, dtype)
    return _out(_with_boost(base, parts, lam, beta, sb_order, dtype), out_dtype)


def ties_sb(base, models, weights, densities, lam=1.0, normalize=True, trim="per_tensor", beta=0.2,
            sb_order="oct2025", dtype=np.float64, out_dtype=np.float32):
    parts = ties_parts(base, models, weights, densities, normalize, trim, dtype)
    return _out(_with_boost(base, parts, lam, beta, sb_order, dtype), out_dtype)
