"""DBSCAN with labels identical to ``sklearn.cluster.DBSCAN(eps, min_samples, metric=...)``.

Two entry points share one cluster-growing core: ``dbscan`` / ``dbscan_bins`` on
feature vectors (``metric='euclidean'``), and ``dbscan_precomputed`` /
``dbscan_bins_precomputed`` on distance matrices (``metric='precomputed'``: the
cleaning stage's noise-debiased spectral distance, see pipeline/stages/clean.py).

Same rules as scikit-learn's ``_dbscan_inner.pyx``: a neighbourhood is every
point at euclidean distance <= eps *including the point itself*; a point is core
when its neighbourhood count >= min_samples; clusters are seeded from unlabelled
core points in index order and grown depth-first, so cluster numbers and the
cluster a shared border point joins (the first cluster to reach it) match.
Noise is -1.

Euclidean: distances are compared squared (d^2 <= eps^2) with d^2 summed directly in
float64 (in SIMD order), like sklearn's KD-tree. sklearn's brute path (used when d > 15)
computes d^2 as |x|^2 - 2 x.y + |y|^2, so a pair whose distance equals eps to
~1e-12 relative may fall on the other side there; exact ties (integer-valued
data) agree.

Precomputed: the neighbourhood of i is every j with ``D[i, j] <= eps`` (row i,
like sklearn's radius query; the diagonal decides whether i counts itself, so
give 0 there). Entries must be >= 0; NaN and +-inf mean "not neighbours", where
sklearn refuses the matrix (its twin in the tests replaces them by a huge finite
distance, which is the same thing).

`dbscan_bins` / `dbscan_bins_precomputed` run many independent bins (paper §2.4:
one DBSCAN per parameter bin) in one call, in parallel over bins.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


# 'reassoc' only: lets the distance sum vectorise (SIMD) while NaN / inf keep their IEEE meaning
@njit(cache=True, fastmath={"reassoc"})
def _sqdist(X, i, j):
    acc = 0.0
    for k in range(X.shape[1]):
        diff = np.float64(X[i, k]) - np.float64(X[j, k])
        acc += diff * diff
    return acc


@njit(cache=True)
def _neighbourhoods(X, eps):
    """CSR neighbourhoods (indptr, indices) of every row, self included, indices ascending."""
    n = X.shape[0]
    eps2 = eps * eps
    cap = 4 * n + 16
    pi = np.empty(cap, dtype=np.int64)
    pj = np.empty(cap, dtype=np.int64)
    npairs = 0
    counts = np.ones(n, dtype=np.int64)  # self
    for i in range(n):
        for j in range(i + 1, n):
            if _sqdist(X, i, j) <= eps2:
                if npairs == cap:
                    cap *= 2
                    pi2 = np.empty(cap, dtype=np.int64)
                    pj2 = np.empty(cap, dtype=np.int64)
                    pi2[:npairs] = pi[:npairs]
                    pj2[:npairs] = pj[:npairs]
                    pi, pj = pi2, pj2
                pi[npairs] = i
                pj[npairs] = j
                npairs += 1
                counts[i] += 1
                counts[j] += 1
    indptr = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        indptr[i + 1] = indptr[i] + counts[i]
    indices = np.empty(indptr[n], dtype=np.int64)
    fill = indptr[:n].copy()
    for i in range(n):
        indices[fill[i]] = i
        fill[i] += 1
    for p in range(npairs):
        i, j = pi[p], pj[p]
        indices[fill[i]] = j
        fill[i] += 1
        indices[fill[j]] = i
        fill[j] += 1
    return indptr, indices


@njit(cache=True)
def _neighbourhoods_precomputed(D, eps):
    """CSR neighbourhoods of every row of the (n, n) matrix D: j with D[i, j] <= eps (NaN / inf never)."""
    n = D.shape[0]
    indptr = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        c = 0
        for j in range(n):
            if D[i, j] <= eps and abs(D[i, j]) != np.inf:   # NaN compares False
                c += 1
        indptr[i + 1] = indptr[i] + c
    indices = np.empty(indptr[n], dtype=np.int64)
    for i in range(n):
        p = indptr[i]
        for j in range(n):
            if D[i, j] <= eps and abs(D[i, j]) != np.inf:
                indices[p] = j
                p += 1
    return indptr, indices


@njit(cache=True)
def _grow(indptr, indices, min_samples, labels):
    """sklearn's _dbscan_inner: seed clusters from unlabelled core points in index order, grow depth-first."""
    n = labels.shape[0]
    labels[:] = -1
    if n == 0:
        return
    is_core = np.empty(n, dtype=np.bool_)
    for i in range(n):
        is_core[i] = indptr[i + 1] - indptr[i] >= min_samples
    stack = np.empty(indices.shape[0] + 1, dtype=np.int64)  # every push is one neighbourhood entry
    label_num = 0
    for seed in range(n):
        if labels[seed] != -1 or not is_core[seed]:
            continue
        top = 0
        i = seed
        while True:
            if labels[i] == -1:
                labels[i] = label_num
                if is_core[i]:
                    for p in range(indptr[i], indptr[i + 1]):
                        v = indices[p]
                        if labels[v] == -1:
                            stack[top] = v
                            top += 1
            if top == 0:
                break
            top -= 1
            i = stack[top]
        label_num += 1


@njit(cache=True)
def _dbscan_into(X, eps, min_samples, labels):
    if X.shape[0] == 0:
        labels[:] = -1
        return
    indptr, indices = _neighbourhoods(X, eps)
    _grow(indptr, indices, min_samples, labels)


@njit(cache=True)
def _dbscan_precomputed_into(D, eps, min_samples, labels):
    if D.shape[0] == 0:
        labels[:] = -1
        return
    indptr, indices = _neighbourhoods_precomputed(D, eps)
    _grow(indptr, indices, min_samples, labels)


@njit(cache=True)
def dbscan(X, eps, min_samples):
    """Cluster labels (int64, -1 = noise) of the rows of ``X`` (n, d)."""
    labels = np.empty(X.shape[0], dtype=np.int64)
    _dbscan_into(X, eps, min_samples, labels)
    return labels


@njit(cache=True, parallel=True)
def dbscan_bins(X, bin_offsets, eps, min_samples_per_bin):
    """DBSCAN on each bin ``X[bin_offsets[b]:bin_offsets[b+1]]``; labels are local to each bin.

    ``min_samples_per_bin`` has one entry per bin (the minPts rule depends on the
    bin population). Returns int64 labels aligned with the rows of ``X``.
    """
    nb = bin_offsets.shape[0] - 1
    labels = np.full(X.shape[0], -1, dtype=np.int64)
    for b in prange(nb):
        s, e = bin_offsets[b], bin_offsets[b + 1]
        _dbscan_into(X[s:e], eps, min_samples_per_bin[b], labels[s:e])
    return labels


@njit(cache=True)
def dbscan_precomputed(D, eps, min_samples):
    """Cluster labels (int64, -1 = noise) from the (n, n) distance matrix ``D``."""
    if D.shape[0] != D.shape[1]:
        raise ValueError("dbscan_precomputed needs a square distance matrix")
    labels = np.empty(D.shape[0], dtype=np.int64)
    _dbscan_precomputed_into(D, eps, min_samples, labels)
    return labels


@njit(cache=True)
def block_offsets(bin_offsets):
    """Start of each bin's m_b x m_b block in a flat array of distance matrices (length n_bins + 1)."""
    nb = bin_offsets.shape[0] - 1
    out = np.zeros(nb + 1, dtype=np.int64)
    for b in range(nb):
        m = bin_offsets[b + 1] - bin_offsets[b]
        out[b + 1] = out[b] + m * m
    return out


@njit(cache=True, parallel=True)
def dbscan_bins_precomputed(D_flat, bin_offsets, eps, min_samples_per_bin):
    """DBSCAN on each bin from its distance matrix; labels local to each bin, aligned with the rows.

    ``D_flat`` holds the bins' row-major m_b x m_b matrices one after another (bin b
    starts at ``block_offsets(bin_offsets)[b]``); ``min_samples_per_bin`` has one entry per bin.
    """
    nb = bin_offsets.shape[0] - 1
    boff = block_offsets(bin_offsets)
    if D_flat.shape[0] != boff[nb]:
        raise ValueError("D_flat length is not the sum of the squared bin sizes")
    labels = np.full(bin_offsets[nb], -1, dtype=np.int64)
    for b in prange(nb):
        s, e = bin_offsets[b], bin_offsets[b + 1]
        m = e - s
        D = D_flat[boff[b]:boff[b + 1]].reshape((m, m))
        _dbscan_precomputed_into(D, eps, min_samples_per_bin[b], labels[s:e])
    return labels
