"""`mgold bench dbscan`: the per-bin DBSCAN loop, Numba vs scikit-learn, in the same process.

Workload shaped like paper §2.4: many bins of 5-150 spectra, each a ~3500-pixel
float32 vector on the clustering grid, eps = clean.dbscan_eps, minPts by the
clean.minpts_* rule. Baseline: sklearn.cluster.DBSCAN called once per bin.
Contenders: mgold.udfs.dbscan.dbscan called once per bin (serial), and
dbscan_bins (all bins in one call, parallel over bins). Labels must agree.
"""

from __future__ import annotations

import time

import numpy as np

from . import benchmark


def _bins(rng: np.random.Generator, n_bins: int, n_pix: int):
    sizes = rng.integers(5, 151, n_bins)
    blocks = []
    for s in sizes:
        # a few families per bin plus outliers: neighbours ~0.6 apart, outliers ~3 apart (eps 1.0)
        fam = rng.normal(0, 0.01, (3, n_pix)).astype(np.float32)
        x = fam[rng.integers(0, 3, s)] + rng.normal(0, 0.007, (s, n_pix)).astype(np.float32)
        out = rng.random(s) < 0.1
        x[out] += rng.normal(0, 0.05, (out.sum(), n_pix)).astype(np.float32)
        blocks.append(x)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return np.vstack(blocks), offsets, sizes


@benchmark("dbscan")
def bench_dbscan(n_bins: int = 120, n_pix: int = 3500, seed: int = 0) -> dict:
    """Per-bin DBSCAN: seconds, bins/s and ratios sklearn / Numba."""
    from sklearn.cluster import DBSCAN

    from ..config import DEFAULT
    from mgold.udfs.dbscan import dbscan, dbscan_bins

    c = DEFAULT.clean
    rng = np.random.default_rng(seed)
    X, offsets, sizes = _bins(rng, n_bins, n_pix)
    min_pts = np.clip(sizes // c.minpts_stars_per_point, c.minpts_min, c.minpts_max).astype(np.int64)
    eps = c.dbscan_eps
    # compile outside the timings
    dbscan(X[:5], eps, 2)
    dbscan_bins(X[:5], np.array([0, 5], np.int64), eps, np.array([2], np.int64))

    t0 = time.perf_counter()
    ref = np.concatenate([DBSCAN(eps=eps, min_samples=int(m)).fit(X[offsets[b]:offsets[b + 1]]).labels_
                          for b, m in enumerate(min_pts)])
    t_sk = time.perf_counter() - t0
    t0 = time.perf_counter()
    loop = np.concatenate([dbscan(X[offsets[b]:offsets[b + 1]], eps, int(m)) for b, m in enumerate(min_pts)])
    t_loop = time.perf_counter() - t0
    t0 = time.perf_counter()
    batch = dbscan_bins(X, offsets, eps, min_pts)
    t_batch = time.perf_counter() - t0
    return {
        "bins": int(n_bins),
        "spectra": int(X.shape[0]),
        "pixels": int(n_pix),
        "labels_identical": bool(np.array_equal(ref, loop) and np.array_equal(ref, batch)),
        "clustered_fraction": round(float(np.mean(ref >= 0)), 3),
        "sklearn_s": round(t_sk, 4),
        "numba_loop_s": round(t_loop, 4),
        "numba_bins_s": round(t_batch, 4),
        "sklearn_bins_per_s": round(n_bins / t_sk, 1),
        "numba_bins_per_s": round(n_bins / t_batch, 1),
        "ratio_sklearn_over_numba_loop": round(t_sk / t_loop, 2),
        "ratio_sklearn_over_numba_bins": round(t_sk / t_batch, 2),
    }
