"""Suggestions for the bins DBSCAN could not settle (paper §2.4's "manually inspected"): ``cln_suggestions``.

A bin with one spectrum, or whose spectra form no cluster, goes to a person
(``cln_unsettled_bins`` -> ``cln_inspection_queue``). At paper scale that is thousands of bins,
so each of their spectra gets a suggested keep / reject with its evidence and a confidence.

Evidence: the kept spectra of the neighbouring bins
--------------------------------------------------------
The references of a candidate are the spectra DBSCAN kept (``cln_keep_rank.is_kept``: core
members of a main cluster, at most ``clean.cap_per_bin`` per bin) in the 27 bins within one step
of its bin in each label (its own bin included: it never holds any, an unsettled bin has no
cluster). Person and suggested decisions do not change the references, so accepting suggestions
never makes them stale. The candidates of a bin and their references are prepared together,
as one bin, with the SAME preparation DBSCAN used (``stages/clean.prepare_bin``: masks,
median normalisation, recalibration against the group's median spectrum) and compared with the
SAME noise-debiased distance kernel (``udfs/spectral_distance.debiased_distances``, parameters
``clean.distance_params``), so D means what it means in a bin.

Scaling: what eps means one bin away
------------------------------------
Two clean spectra of one bin lie within eps = ``clean.dbscan_eps`` of each other when DBSCAN
calls them neighbours. A reference one step away in Teff differs from the candidate by the
spectrum's change over 50 K as well (~1.3 in D for a cool dwarf), so D is compared with a
threshold that grows by what the label offset explains::

    T^2(delta) = eps^2 + sum_p a_p delta_p^2,    delta_p = label offset in bin steps

``a_p`` (per class: dwarf, giant) is measured on every build from the reference pairs
themselves, D^2_ij = c + sum_p a_p delta_p^2 over pairs of references of one group, a least-
squares fit with iterative 3-sigma clipping (negative slopes dropped), pooled over classes when a
class has fewer than ``clean.suggestion_min_pairs`` pairs, zero when there are none (then eps
alone, as in a bin). The scaled distance ``eps * D / T`` is what DBSCAN would compare with eps:
<= eps means "as close as a same-bin neighbour, once the label offset is taken out".

Decision and confidence
-----------------------
A candidate is suggested for keeping when it would be a core point among its references: at
least ``min_pts(n_refs + 1) - 1`` of them (DBSCAN's minPts rule, ``stages/clean.min_pts``, the
candidate counting itself) within the threshold. Each reference is within it with probability
p = Phi((T^2 - D^2) / sigma), sigma^2 = the photon-noise variance of D^2 of that pair
(``noise_sd``) + the scatter of the reference pairs about the fit beyond their noise; ``p_keep``
= P(at least that many within) for independent references (Poisson binomial). The suggestion is
keep when p_keep >= 0.5, and its confidence is max(p_keep, 1 - p_keep). A spectrum DBSCAN could
not use (too few good pixels: no distance at all) is suggested for rejection with confidence 1;
one without references gets no suggestion and stays with a person.

``cln_kept`` accepts every suggestion with confidence >= ``clean.suggestion_min_confidence``
unless a person decided that spectrum (``landing.inspection_decisions``); ``mgold inspect
accept-suggestions`` records them as decisions (``suggested = true``) for a person to review.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa

from mgold.udfs.spectral_distance import debiased_distances, noise_sd

from ..config import Config
from ..pymodel import python_model
from .clean import DBSCAN_PARAMS, distance_params, iter_bin_chunks, min_pts, prepare_bin

LABELS = ("teff_k", "logg_dex", "mh_dex")
STEP_KEYS = ("bin_teff_k", "bin_logg_dex", "bin_mh_dex")
CLASSES = ("dwarf", "giant")
NOTE_NO_REFERENCES = "no kept spectra in the neighbouring bins"
NOTE_UNUSABLE = "unusable spectrum (too few good pixels for a distance)"

# the bin index of a row: teff_lo_k / bin_teff_k, ... (cln_bins' lower edges are multiples of the step)
_INDEX_SQL = """round(b.teff_lo_k / getvariable('clean.bin_teff_k'))::bigint as teff_idx,
       round(b.logg_lo_dex / getvariable('clean.bin_logg_dex'))::bigint as logg_idx,
       round(b.mh_lo_dex / getvariable('clean.bin_mh_dex'))::bigint as mh_idx"""
CANDIDATES_SQL = f"""
select b.bin_id, u.reason, b.obsid, b.class, b.teff_k, b.logg_dex, b.mh_dex, b.snr_i, b.snr_rank,
       {_INDEX_SQL},
       s.rv_kms, s.loglam0, s.dloglam, s.flux, s.ivar
from cln_unsettled_bins u
join cln_bins b using (bin_id)
join spc_cluster_grid s using (obsid)
order by b.bin_id, b.snr_rank
"""
REFERENCES_SQL = f"""
select b.bin_id, b.obsid, b.class, b.teff_k, b.logg_dex, b.mh_dex,
       {_INDEX_SQL},
       s.rv_kms, s.loglam0, s.dloglam, s.flux, s.ivar
from cln_keep_rank k
join cln_bins b using (obsid)
join spc_cluster_grid s using (obsid)
where k.is_kept
order by b.obsid
"""

SUGGESTION_COLUMNS = {
    "bin_id": "varchar", "obsid": "bigint", "reason": "varchar", "snr_i": "double",
    "n_references": ("integer", "kept spectra of the 27 bins within one step in each label"),
    "n_needed": ("integer", "references that must lie within the threshold: minPts(n_references + 1) - 1"),
    "n_within": ("integer", "references whose scaled distance is <= clean.dbscan_eps"),
    "p_keep": ("double", "probability that at least n_needed references lie within the threshold"),
    "suggestion": ("varchar", "keep | reject; NULL: no references, left to a person"),
    "confidence": ("double", "max(p_keep, 1 - p_keep); 1 for an unusable spectrum"),
    "nearest_scaled_dist": ("double", "smallest eps * D / T over the references"),
    "note": "varchar",
    "reference_obsids": ("bigint[]", "the references, nearest (scaled) first"),
    "reference_bins": "varchar[]",
    "distances": ("double[]", "debiased D to each reference (udfs/spectral_distance.py)"),
    "scaled_distances": ("double[]", "eps * D / T(label offset): compare with clean.dbscan_eps"),
    "noise_sd_d2": ("double[]", "photon-noise standard deviation of D^2 of each pair"),
    "p_within": ("double[]", "probability that each reference lies within the threshold"),
    "gradient_d2_per_step": ("double[]", "a_p of the fit used (Teff, log g, [M/H]): D^2 per squared bin step"),
}


# --------------------------------------------------------------------------- the references

class References:
    """The DBSCAN-kept spectra, indexed by bin index (teff_idx, logg_idx, mh_idx)."""

    def __init__(self, table: pa.Table):
        d = {c: table[c].to_numpy(zero_copy_only=False) for c in table.column_names
             if c not in ("flux", "ivar", "bin_id", "class")}
        self.obsid = d["obsid"].astype(np.int64)
        self.bin_id = np.asarray(table["bin_id"].to_pylist(), dtype=object)
        self.cls = np.asarray(table["class"].to_pylist(), dtype=object)
        self.labels = np.column_stack([d[c].astype(np.float64) for c in LABELS]) if table.num_rows \
            else np.empty((0, 3))
        self.rv = np.asarray([np.nan if v is None else v for v in table["rv_kms"].to_pylist()], dtype=np.float64)
        n = table["flux"].type.list_size if table.num_rows else 0
        self.flux = _matrix(table["flux"], n)
        self.ivar = _matrix(table["ivar"], n)
        self.by_bin: dict[tuple[int, int, int], list[int]] = {}
        for i, key in enumerate(zip(d.get("teff_idx", []), d.get("logg_idx", []), d.get("mh_idx", []))):
            self.by_bin.setdefault(tuple(int(k) for k in key), []).append(i)

    def around(self, key: tuple[int, int, int]) -> np.ndarray:
        """Reference rows of the 27 bins within one step of bin ``key`` in each label."""
        t, g, m = key
        rows = [i for dt in (-1, 0, 1) for dg in (-1, 0, 1) for dm in (-1, 0, 1)
                for i in self.by_bin.get((t + dt, g + dg, m + dm), ())]
        return np.asarray(sorted(rows), dtype=np.int64)


def _matrix(col, n: int) -> np.ndarray:
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if not len(arr):
        return np.empty((0, n), dtype=np.float32)
    return arr.flatten().to_numpy(zero_copy_only=False).reshape(-1, n)


# --------------------------------------------------------------------------- distances per group

def group_distances(cand_flux: np.ndarray, cand_ivar: np.ndarray, cand_rv: np.ndarray, refs: References,
                    rows: np.ndarray, loglam: np.ndarray, cfg: Config) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(D, noise sd of D^2, usable) of the group {candidates, references ``rows``} prepared as one bin:
    D is (m_c + m_r) square, inf where no distance exists; usable per candidate."""
    F = np.vstack([cand_flux, refs.flux[rows]])
    IV = np.vstack([cand_ivar, refs.ivar[rows]])
    rv = np.r_[cand_rv, refs.rv[rows]]
    y, iv = prepare_bin(F, IV, cfg, loglam, rv)
    params = distance_params(cfg, F.shape[1], loglam)
    D = debiased_distances(y, iv, *params)
    S = noise_sd(y, iv, *params)
    return D, S, np.isfinite(np.diag(D))[: len(cand_flux)]


def fit_label_gradient(d2: np.ndarray, delta: np.ndarray, noise_var: np.ndarray,
                       iterations: int = 5, clip: float = 3.0) -> tuple[np.ndarray, float, float]:
    """Fit D^2 = c + sum_p a_p delta_p^2 (module docstring) -> (a (3,), c, sigma_fit): least squares
    with iterative ``clip``-sigma rejection (robust sigma), negative slopes dropped and refitted;
    ``sigma_fit`` is the robust scatter of the residuals beyond the pairs' median noise variance."""
    a = np.zeros(3)
    if d2.size < 4:
        return a, float(np.median(d2)) if d2.size else 0.0, 0.0
    X = np.column_stack([np.ones(d2.size), delta ** 2])
    use = np.ones(d2.size, dtype=bool)
    coef = np.zeros(4)
    for _ in range(iterations):
        coef = np.zeros(4)
        free = np.ones(4, dtype=bool)
        while True:
            sol, *_ = np.linalg.lstsq(X[use][:, free], d2[use], rcond=None)
            coef[free] = sol
            neg = free & (coef < 0) & (np.arange(4) > 0)
            if not neg.any():
                break
            free &= ~neg
            coef[~free] = 0.0
        resid = d2 - X @ coef
        sig = 1.4826 * np.median(np.abs(resid[use] - np.median(resid[use])))
        new = np.abs(resid) <= clip * max(sig, 1e-12)
        if (new == use).all() or new.sum() < 4:
            break
        use = new
    resid = (d2 - X @ coef)[use]
    scatter2 = (1.4826 * np.median(np.abs(resid - np.median(resid)))) ** 2
    sigma_fit = float(np.sqrt(max(scatter2 - float(np.median(noise_var[use])), 0.0)))
    return coef[1:], float(coef[0]), sigma_fit


def p_at_least(p: np.ndarray, k: int) -> float:
    """P(at least ``k`` of independent events with probabilities ``p`` happen) (Poisson binomial)."""
    if k <= 0:
        return 1.0
    if k > p.size:
        return 0.0
    dist = np.zeros(p.size + 1)
    dist[0] = 1.0
    for q in p:                      # dist[j] = P(j events so far)
        dist[1:] = dist[1:] * (1 - q) + dist[:-1] * q
        dist[0] *= 1 - q
    return float(np.clip(dist[k:].sum(), 0.0, 1.0))


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    return ndtr(z)


# --------------------------------------------------------------------------- the model

def suggest(candidates: Iterable[pa.RecordBatch], refs: References, cfg: Config) -> pa.Table:
    """The ``cln_suggestions`` rows of every candidate (batches of CANDIDATES_SQL rows ordered by bin)."""
    steps = np.array([getattr(cfg.clean, k) for k in STEP_KEYS], dtype=np.float64)
    eps = float(cfg.clean.dbscan_eps)
    per: list[dict] = []                         # one dict per candidate
    pairs: dict[tuple[int, int], tuple[float, np.ndarray, float, str]] = {}   # reference pairs, for the fit
    chunk = int(cfg.spectra.batch_spectra)
    for rows, flux, ivar in iter_bin_chunks(candidates, chunk):
        F, IV = np.stack(flux), np.stack(ivar)
        bins = np.asarray(rows["bin_id"], dtype=object)
        rv = np.asarray([np.nan if v is None else v for v in rows["rv_kms"]], dtype=np.float64)
        lab = np.column_stack([np.asarray(rows[c], dtype=np.float64) for c in LABELS])
        for b in dict.fromkeys(bins):
            idx = np.flatnonzero(bins == b)
            s = idx[0]
            key = (int(rows["teff_idx"][s]), int(rows["logg_idx"][s]), int(rows["mh_idx"][s]))
            ref_rows = refs.around(key)
            loglam = rows["loglam0"][s] + rows["dloglam"][s] * np.arange(F.shape[1])
            base = [{"bin_id": b, "obsid": int(rows["obsid"][i]), "reason": rows["reason"][i],
                     "snr_i": rows["snr_i"][i], "cls": rows["class"][i], "labels": lab[i]} for i in idx]
            D, S, usable = group_distances(F[idx], IV[idx], rv[idx], refs, ref_rows, loglam, cfg)
            m = idx.size
            for j, r in enumerate(base):
                per.append({**r, "usable": bool(usable[j]), "refs": ref_rows, "d": D[j, m:], "sd": S[j, m:]})
            ia, ic = np.triu_indices(ref_rows.size, 1)
            fin = np.isfinite(D[m + ia, m + ic])
            for a, c in zip(ia[fin], ic[fin]):
                ra, rc = int(ref_rows[a]), int(ref_rows[c])
                if (ra, rc) not in pairs:          # a pair seen in an earlier group keeps that distance
                    same = refs.cls[ra] if refs.cls[ra] == refs.cls[rc] else ""
                    pairs[(ra, rc)] = (D[m + a, m + c] ** 2, (refs.labels[ra] - refs.labels[rc]) / steps,
                                       S[m + a, m + c] ** 2, same)
    fits = _class_fits(pairs, int(cfg.clean.suggestion_min_pairs))
    out = [_decide(r, refs, fits, steps, eps, cfg) for r in per]
    return _table(out)


def _class_fits(pairs: dict, min_pairs: int) -> dict[str, tuple[np.ndarray, float, float]]:
    """{class: (a, c, sigma_fit)} and '' for the pooled fit (see fit_label_gradient)."""
    vals = list(pairs.values())
    d2 = np.array([v[0] for v in vals], dtype=np.float64)
    delta = np.array([v[1] for v in vals], dtype=np.float64).reshape(-1, 3)
    nv = np.array([v[2] for v in vals], dtype=np.float64)
    cls = np.array([v[3] for v in vals], dtype=object)
    pooled = fit_label_gradient(d2, delta, nv)
    fits = {"": pooled}
    for c in CLASSES:
        sel = cls == c
        fits[c] = fit_label_gradient(d2[sel], delta[sel], nv[sel]) if sel.sum() >= min_pairs else pooled
    return fits


def _decide(r: dict, refs: References, fits: dict, steps: np.ndarray, eps: float, cfg: Config) -> dict:
    ref_rows = r["refs"]
    out = {k: r[k] for k in ("bin_id", "obsid", "reason", "snr_i")}
    out.update(n_references=int(ref_rows.size), n_needed=None, n_within=None, p_keep=None, suggestion=None,
               confidence=None, nearest_scaled_dist=None, note=None, reference_obsids=[], reference_bins=[],
               distances=[], scaled_distances=[], noise_sd_d2=[], p_within=[], gradient_d2_per_step=None)
    if not r["usable"]:
        return {**out, "suggestion": "reject", "confidence": 1.0, "p_keep": 0.0, "note": NOTE_UNUSABLE}
    if ref_rows.size == 0:
        return {**out, "note": NOTE_NO_REFERENCES}
    a, _, sigma_fit = fits.get(r["cls"], fits[""])
    delta = (r["labels"][None, :] - refs.labels[ref_rows]) / steps
    t2 = eps * eps + (a[None, :] * delta ** 2).sum(axis=1)
    d = r["d"]
    fin = np.isfinite(d)
    scaled = np.where(fin, eps * d / np.sqrt(t2), np.inf)
    sigma = np.sqrt(np.where(np.isfinite(r["sd"]), r["sd"], 0.0) ** 2 + sigma_fit ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sigma > 0, (t2 - np.where(fin, d, np.inf) ** 2) / sigma,
                     np.where(np.where(fin, d, np.inf) ** 2 <= t2, np.inf, -np.inf))
    p = np.where(fin, _normal_cdf(z), 0.0)
    need = int(min_pts(ref_rows.size + 1, cfg)) - 1
    pk = p_at_least(p, need)
    order = np.argsort(scaled, kind="stable")
    fin_or_nan = lambda v: [float(x) if np.isfinite(x) else None for x in v]  # noqa: E731
    return {**out, "n_needed": need, "n_within": int((scaled <= eps).sum()), "p_keep": pk,
            "suggestion": "keep" if pk >= 0.5 else "reject", "confidence": max(pk, 1.0 - pk),
            "nearest_scaled_dist": float(scaled[order[0]]) if np.isfinite(scaled[order[0]]) else None,
            "reference_obsids": refs.obsid[ref_rows[order]].tolist(),
            "reference_bins": refs.bin_id[ref_rows[order]].tolist(),
            "distances": fin_or_nan(d[order]), "scaled_distances": fin_or_nan(scaled[order]),
            "noise_sd_d2": fin_or_nan(r["sd"][order]), "p_within": p[order].tolist(),
            "gradient_d2_per_step": a.tolist()}


def _table(rows: list[dict]) -> pa.Table:
    types = {"bin_id": pa.string(), "obsid": pa.int64(), "reason": pa.string(), "snr_i": pa.float64(),
             "n_references": pa.int32(), "n_needed": pa.int32(), "n_within": pa.int32(), "p_keep": pa.float64(),
             "suggestion": pa.string(), "confidence": pa.float64(), "nearest_scaled_dist": pa.float64(),
             "note": pa.string(), "reference_obsids": pa.list_(pa.int64()), "reference_bins": pa.list_(pa.string()),
             "distances": pa.list_(pa.float64()), "scaled_distances": pa.list_(pa.float64()),
             "noise_sd_d2": pa.list_(pa.float64()), "p_within": pa.list_(pa.float64()),
             "gradient_d2_per_step": pa.list_(pa.float64())}
    return pa.table({c: pa.array([r[c] for r in rows], t) for c, t in types.items()})


@python_model(
    name="cln_suggestions", layer="clean", columns=SUGGESTION_COLUMNS,
    inputs={"candidates": CANDIDATES_SQL, "references": REFERENCES_SQL},
    params=DBSCAN_PARAMS + ("clean.bin_teff_k", "clean.bin_logg_dex", "clean.bin_mh_dex",
                            "clean.suggestion_min_pairs"),
    description="A suggested keep / reject, with its evidence and confidence, for every spectrum of the bins "
                "DBSCAN could not settle (paper §2.4 manual inspection): its noise-debiased distance to the "
                "kept spectra of the neighbouring bins, scaled so that eps keeps its meaning.",
    grain="one row per obsid of cln_unsettled_bins",
    tests="unique(obsid); not_null(bin_id, obsid, n_references); accepted(suggestion, 'keep', 'reject'); "
          "range(confidence, 0.5, 1)",
)
def build(ctx):
    refs = References(ctx.table("references"))
    yield suggest(ctx.batches("candidates", ctx.cfg.spectra.batch_spectra), refs, ctx.cfg)
