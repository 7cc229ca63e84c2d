"""DBSCAN cleaning per parameter bin (paper §2.4): the Python model ``cln_dbscan``.

Input: the ``cln_bins`` rows (top ``clean.top_n_per_bin`` by S/N of each 50 K x
0.1 x 0.1 bin) and their recalibrated clustering-grid spectra (``spc_cluster_grid``).

Embedding and distance (what ``eps`` means)
-------------------------------------------
Each spectrum is divided by its median over good pixels (ivar > 0), so distances
compare spectral *shapes*, not flux levels (the recalibration already put all of a
bin on the model-SED scale; the median removes what is left). A masked pixel is
filled with the bin's per-pixel median of the good normalised spectra, so it adds
~nothing to any distance rather than a spurious 0-vs-1 jump. The distance is the
Euclidean norm of the difference of these vectors, scaled by
sqrt(n_ref / n_pix): with ``clean.dist_ref_pix = 0`` n_ref is the pixel count of
the 3900-8800 AA clustering grid at the LAMOST sampling (paper §2.4, the grid the
paper computed its distances on), i.e. plain Euclidean distance on that grid; a
finer or coarser grid keeps eps meaning the same thing. Spectra with fewer than
``clean.min_good_pix_frac`` good pixels, or a non-positive median, are unusable:
they are noise by construction (no neighbours).

minPts rule (config ``clean.minpts_*``): min_pts = clip(n // minpts_stars_per_point,
minpts_min, minpts_max), n = number of spectra clustered in the bin, so bins of
< 12 spectra need a pair, bins of >= 20 need 5 (paper: "2 to 5 based on the number
of samples").

Kept: the largest cluster of the bin (ties: the lower label, i.e. the one seeded
from the higher-S/N spectrum, as rows enter DBSCAN in S/N order); its core members
by decreasing S/N, at most ``clean.cap_per_bin``. Core flags are recomputed from
the same distances (GEMM form; ties at 1e-12 relative could differ from the
kernel's direct sums, which is immaterial for the cap).
"""

from __future__ import annotations

import warnings

import numpy as np
import pyarrow as pa

from mgold.udfs.dbscan import dbscan_bins

from ..config import Config
from ..inspect import ensure_decisions_table
from ..sqlmodel import python_model

SOURCE_SQL = """
select b.bin_id, b.obsid, b.source_id, b.snr_i, b.snr_rank, b.n_clustered, s.flux, s.ivar
from cln_bins b
join spc_cluster_grid s using (obsid)
order by b.bin_id, b.snr_rank
"""


def min_pts(n: np.ndarray | int, cfg: Config) -> np.ndarray:
    """minPts for a bin of ``n`` spectra (the documented rule above)."""
    c = cfg.clean
    return np.clip(np.asarray(n) // c.minpts_stars_per_point, c.minpts_min, c.minpts_max).astype(np.int64)


def embed_bin(flux: np.ndarray, ivar: np.ndarray, cfg: Config, n_ref: int | None = None) -> np.ndarray:
    """(m, n) spectra of one bin -> (m, n) float64 vectors whose Euclidean distance is the documented one.

    Unusable rows come back as NaN (DBSCAN then finds them no neighbour, not even themselves).
    """
    m, n = flux.shape
    good = (ivar > 0) & np.isfinite(flux)
    med = np.array([np.median(flux[i, good[i]]) if good[i].any() else np.nan for i in range(m)])
    usable = (good.sum(axis=1) >= cfg.clean.min_good_pix_frac * n) & (med > 0)
    y = np.where(good, flux, np.nan) / np.where(usable, med, np.nan)[:, None]
    if usable.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)      # all-masked pixels: handled below
            ref = np.nanmedian(np.where(usable[:, None], y, np.nan), axis=0)
        ref = np.where(np.isfinite(ref), ref, 1.0)
    else:
        ref = np.ones(n)
    y = np.where(good, y, ref[None, :])
    y[~usable] = np.nan
    n_ref = n_ref or cfg.clean.dist_ref_pix or n
    return y * np.sqrt(n_ref / n)


def pairwise(X: np.ndarray) -> np.ndarray:
    """Euclidean distance matrix of the rows of X (NaN rows -> inf)."""
    sq = np.einsum("ij,ij->i", X, X)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * X @ X.T, 0.0)
    np.fill_diagonal(d2, 0.0)
    d = np.sqrt(d2)
    bad = ~np.isfinite(sq)
    d[bad, :] = np.inf
    d[:, bad] = np.inf
    return d


def reference_n_pix(cfg: Config) -> int:
    from .spectra import grid

    return grid(cfg, "cluster")[2]


def cluster_chunk(rows: dict[str, list], flux: list[np.ndarray], ivar: list[np.ndarray],
                  cfg: Config, eps: float | None = None) -> pa.Table:
    """DBSCAN every bin of a chunk (rows sorted by bin, then S/N rank) -> the cln_dbscan rows."""
    eps = cfg.clean.dbscan_eps if eps is None else eps
    bin_id = np.asarray(rows["bin_id"], dtype=object)
    starts = np.flatnonzero(np.r_[True, bin_id[1:] != bin_id[:-1]])
    offsets = np.r_[starts, len(bin_id)].astype(np.int64)
    F, IV = np.stack(flux), np.stack(ivar)
    n_ref = cfg.clean.dist_ref_pix or reference_n_pix(cfg)
    X = np.empty(F.shape, dtype=np.float64)
    sizes = np.diff(offsets)
    mp = min_pts(sizes, cfg)
    m = len(bin_id)
    out = {k: np.zeros(m, dtype=t) for k, t in (("is_core", bool), ("in_main_cluster", bool),
                                                  ("keep_rank", np.int64), ("n_clusters", np.int64),
                                                  ("nn_dist", np.float64), ("min_pts", np.int64),
                                                  ("usable", bool))}
    for b in range(len(sizes)):
        s, e = offsets[b], offsets[b + 1]
        X[s:e] = embed_bin(F[s:e], IV[s:e], cfg, n_ref)
    labels = dbscan_bins(X, offsets, float(eps), mp)
    snr = np.asarray(rows["snr_i"], dtype=np.float64)
    for b in range(len(sizes)):
        s, e = offsets[b], offsets[b + 1]
        d = pairwise(X[s:e])
        lab = labels[s:e]
        out["min_pts"][s:e] = mp[b]
        out["usable"][s:e] = np.isfinite(X[s:e, 0])
        out["is_core"][s:e] = (d <= eps).sum(axis=1) >= mp[b]
        off = d + np.diag(np.full(e - s, np.inf))
        out["nn_dist"][s:e] = off.min(axis=1) if e - s > 1 else np.inf
        clusters, counts = np.unique(lab[lab >= 0], return_counts=True)
        out["n_clusters"][s:e] = clusters.size
        if clusters.size == 0:
            continue
        main = clusters[np.argmax(counts)]
        member = lab == main
        out["in_main_cluster"][s:e] = member
        cand = np.flatnonzero(member & out["is_core"][s:e])
        order = cand[np.argsort(-snr[s:e][cand], kind="stable")]
        rank = np.zeros(e - s, dtype=np.int64)
        rank[order] = np.arange(1, order.size + 1)
        out["keep_rank"][s:e] = rank
    keep_rank = out["keep_rank"]
    return pa.table({
        "bin_id": pa.array(bin_id.tolist(), pa.string()),
        "obsid": pa.array(rows["obsid"], pa.int64()),
        "source_id": pa.array(rows["source_id"], pa.int64()),
        "snr_i": pa.array(snr),
        "snr_rank": pa.array(rows["snr_rank"], pa.int64()),
        "n_clustered": pa.array(np.repeat(sizes, sizes), pa.int64()),
        "min_pts": pa.array(out["min_pts"]),
        "eps": pa.array(np.full(m, float(eps))),
        "usable": pa.array(out["usable"]),
        "cluster_label": pa.array(labels.astype(np.int64)),
        "is_core": pa.array(out["is_core"]),
        "n_clusters": pa.array(out["n_clusters"]),
        "in_main_cluster": pa.array(out["in_main_cluster"]),
        "keep_rank": pa.array(np.where(keep_rank > 0, keep_rank, 0)),
        "is_kept": pa.array((keep_rank > 0) & (keep_rank <= cfg.clean.cap_per_bin)),
        "nn_dist": pa.array(np.where(np.isfinite(out["nn_dist"]), out["nn_dist"], np.nan), from_pandas=True),
    })


def iter_bin_chunks(con, cfg: Config, sql: str = SOURCE_SQL):
    """(rows, flux, ivar) chunks of whole bins, about ``spectra.batch_spectra`` spectra each."""
    cur = con.cursor()
    try:
        reader = cur.sql(sql).to_arrow_reader(cfg.spectra.batch_spectra)
        rows: dict[str, list] = {}
        flux: list[np.ndarray] = []
        ivar: list[np.ndarray] = []
        for rb in reader:
            d = rb.to_pydict()
            fl = rb.column("flux")
            n = fl.type.list_size
            f = fl.flatten().to_numpy(zero_copy_only=False).reshape(-1, n)
            iv = rb.column("ivar").flatten().to_numpy(zero_copy_only=False).reshape(-1, n)
            for i, b in enumerate(d["bin_id"]):
                # emit only at a bin boundary so a bin never straddles two chunks
                if len(flux) >= cfg.spectra.batch_spectra and rows["bin_id"][-1] != b:
                    yield rows, flux, ivar
                    rows, flux, ivar = {}, [], []
                for k in ("bin_id", "obsid", "source_id", "snr_i", "snr_rank"):
                    rows.setdefault(k, []).append(d[k][i])
                flux.append(f[i])
                ivar.append(iv[i])
        if flux:
            yield rows, flux, ivar
    finally:
        cur.close()


def _create_target(con, target: str) -> None:
    con.execute(f"""create table {target} (
        bin_id varchar, obsid bigint, source_id bigint, snr_i double, snr_rank bigint,
        n_clustered bigint, min_pts bigint, eps double, usable boolean, cluster_label bigint,
        is_core boolean, n_clusters bigint, in_main_cluster boolean, keep_rank bigint,
        is_kept boolean, nn_dist double)""")


@python_model(
    name="cln_dbscan", layer="clean", depends_on=("cln_bins", "spc_cluster_grid"),
    params=("clean.dbscan_eps", "clean.minpts_min", "clean.minpts_max", "clean.minpts_stars_per_point",
            "clean.cap_per_bin", "clean.dist_ref_pix", "clean.min_good_pix_frac", "spectra.batch_spectra",
            "spectra.cluster_wave_min_aa", "spectra.cluster_wave_max_aa", "spectra.dloglam"),
    kind="table",
    description="DBSCAN per parameter bin on the normalised recalibrated spectra (paper §2.4): cluster "
                "label, core flag, main cluster and the capped keep flag of every clustered spectrum.",
    grain="one row per obsid of cln_bins",
    tests="unique(obsid); not_null(bin_id, obsid, cluster_label, is_kept); range(min_pts, 1, 100)",
)
def build(con, cfg: Config, target: str) -> None:
    # cln_kept reads the decisions; a fresh warehouse must have the (empty) table
    ensure_decisions_table(con)
    _create_target(con, target)
    for rows, flux, ivar in iter_bin_chunks(con, cfg):
        tbl = cluster_chunk(rows, flux, ivar, cfg)
        con.register("_cln_batch", tbl)
        try:
            con.execute(f"insert into {target} select * from _cln_batch")
        finally:
            con.unregister("_cln_batch")
