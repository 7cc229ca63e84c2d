"""udfs/dbscan.py: labels identical to scikit-learn's DBSCAN (numbering and border points included),
on feature vectors (metric='euclidean') and on distance matrices (metric='precomputed')."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from naive import naive_dbscan
from sklearn.cluster import DBSCAN

from mgold.udfs.dbscan import block_offsets, dbscan, dbscan_bins, dbscan_bins_precomputed, dbscan_precomputed


def _blobs_and_noise(rng, n, d):
    k = int(rng.integers(1, 5))
    centres = rng.uniform(-5, 5, (k, d))
    n_noise = int(rng.integers(0, max(1, n // 3)))
    pts = centres[rng.integers(0, k, n - n_noise)] + rng.normal(0, rng.uniform(0.1, 0.8), (n - n_noise, d))
    X = np.vstack([pts, rng.uniform(-8, 8, (n_noise, d))])
    return X[rng.permutation(n)]


@pytest.mark.parametrize("seed", range(40))
def test_labels_identical_to_sklearn_on_random_blobs_with_noise(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 150))
    d = int(rng.choice([1, 2, 3, 8, 20]))
    X = _blobs_and_noise(rng, n, d) if n else np.empty((0, d))
    if n > 5 and seed % 3 == 0:
        X[rng.integers(0, n, n // 5)] = X[rng.integers(0, n, n // 5)]  # exact duplicates
    eps = float(rng.uniform(0.2, 2.0)) * np.sqrt(d)
    ms = int(rng.integers(1, 7))
    np.testing.assert_array_equal(dbscan(X, eps, ms), naive_dbscan(X, eps, ms))


@pytest.mark.parametrize("n", [0, 1, 2])
@pytest.mark.parametrize("ms", [1, 2, 3])
def test_tiny_inputs(n, ms):
    X = np.array([[0.0, 0.0], [0.5, 0.0]])[:n]
    np.testing.assert_array_equal(dbscan(X, 1.0, ms), naive_dbscan(X, 1.0, ms))


def test_all_noise_when_points_are_far_apart():
    X = np.arange(20, dtype=np.float64)[:, None] * 10
    labels = dbscan(X, 1.0, 2)
    assert np.all(labels == -1)
    np.testing.assert_array_equal(labels, naive_dbscan(X, 1.0, 2))


@pytest.mark.parametrize("d", [2, 20])  # sklearn uses a KD-tree for d <= 15, brute GEMM distances above
def test_eps_exactly_at_pairwise_distances_on_an_integer_lattice(d):
    rng = np.random.default_rng(d)
    X = rng.integers(0, 4, (120, d)).astype(np.float64)
    dists = np.unique(np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1)))
    for eps, ms in itertools.product(dists[1:6], (2, 3, 5)):
        np.testing.assert_array_equal(dbscan(X, eps, ms), naive_dbscan(X, eps, ms), err_msg=f"eps={eps} ms={ms}")


def test_border_point_goes_to_the_first_cluster_that_reaches_it():
    # a non-core point at x = 0 within eps of a core of each cluster; the right-hand
    # cluster has the lower seed index, so it is cluster 0 and takes the border point
    X = np.array([[0.0], [1.0], [1.2], [1.4], [1.6], [-1.0], [-1.2], [-1.4], [-1.6]])
    labels = dbscan(X, 1.0, 4)
    np.testing.assert_array_equal(labels, naive_dbscan(X, 1.0, 4))
    np.testing.assert_array_equal(labels, [0, 0, 0, 0, 0, 1, 1, 1, 1])


def test_float32_spectra_like_vectors_match_sklearn():
    rng = np.random.default_rng(3)
    n, d = 120, 3500
    base = rng.normal(0, 1, (4, d)).astype(np.float32) * 0.05
    X = base[rng.integers(0, 4, n)] + rng.normal(0, 0.01, (n, d)).astype(np.float32)
    X[:10] += rng.normal(0, 0.1, (10, d)).astype(np.float32)  # outliers
    for eps in (0.6, 0.9, 1.2):
        np.testing.assert_array_equal(dbscan(X, eps, 3), naive_dbscan(X, eps, 3))


def test_dbscan_bins_equals_per_bin_sklearn_including_empty_bins():
    rng = np.random.default_rng(9)
    sizes = [0, 5, 150, 1, 0, 37, 2, 80]
    X = np.vstack([_blobs_and_noise(rng, s, 6) if s else np.empty((0, 6)) for s in sizes])
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    ms = np.array([min(5, max(2, s // 4)) for s in sizes], dtype=np.int64)
    labels = dbscan_bins(X, offsets, 1.5, ms)
    assert labels.shape == (X.shape[0],)
    for b in range(len(sizes)):
        s, e = offsets[b], offsets[b + 1]
        np.testing.assert_array_equal(labels[s:e], naive_dbscan(X[s:e], 1.5, int(ms[b])), err_msg=f"bin {b}")


# ---------------------------------------------------------------------------------------------
# precomputed distance matrices: labels identical to sklearn's metric='precomputed'
# ---------------------------------------------------------------------------------------------
def sklearn_precomputed(D, eps, min_samples):
    """scikit-learn on D, with NaN / inf (which it refuses) replaced by a distance no eps reaches."""
    D = np.asarray(D, dtype=np.float64)
    if D.shape[0] == 0:
        return np.empty(0, dtype=np.int64)
    D = np.where(np.isfinite(D), D, np.finfo(np.float64).max)
    return DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit(D).labels_.astype(np.int64)


def _dist(X):
    return np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(-1))


@pytest.mark.parametrize("seed", range(30))
def test_precomputed_labels_identical_to_sklearn_on_random_blobs(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(0, 150))
    d = int(rng.choice([1, 2, 5, 30]))
    X = _blobs_and_noise(rng, n, d) if n else np.empty((0, d))
    D = _dist(X)
    eps = float(rng.uniform(0.2, 2.0)) * np.sqrt(d)
    ms = int(rng.integers(1, 7))
    np.testing.assert_array_equal(dbscan_precomputed(D, eps, ms), sklearn_precomputed(D, eps, ms))


@pytest.mark.parametrize("n", [0, 1, 2])
@pytest.mark.parametrize("ms", [1, 2, 3])
def test_precomputed_tiny_inputs(n, ms):
    D = np.array([[0.0, 0.5], [0.5, 0.0]])[:n, :n]
    np.testing.assert_array_equal(dbscan_precomputed(D, 1.0, ms), sklearn_precomputed(D, 1.0, ms))


def test_precomputed_ties_at_eps_are_neighbours():
    rng = np.random.default_rng(4)
    D = _dist(rng.integers(0, 4, (100, 3)).astype(np.float64))
    for eps, ms in itertools.product(np.unique(D)[1:6], (2, 3, 5)):
        np.testing.assert_array_equal(dbscan_precomputed(D, eps, ms), sklearn_precomputed(D, eps, ms),
                                      err_msg=f"eps={eps} ms={ms}")


def test_precomputed_nan_and_inf_rows_are_nobodys_neighbours():
    rng = np.random.default_rng(8)
    D = _dist(_blobs_and_noise(rng, 60, 3))
    D[5, :] = D[:, 5] = np.nan                      # unusable spectrum, not even its own neighbour
    D[9, :] = D[:, 9] = np.inf
    D[9, 9] = 0.0                                   # no partner, but counts itself
    D[12, 30] = D[30, 12] = -np.inf
    D[20, 21] = D[21, 20] = np.nan
    for ms in (1, 2, 4):
        got = dbscan_precomputed(D, 1.0, ms)
        np.testing.assert_array_equal(got, sklearn_precomputed(D, 1.0, ms))
        assert got[5] == -1
    assert dbscan_precomputed(D, 1.0, 1)[9] >= 0    # min_samples 1: its own cluster


def test_precomputed_uses_rows_like_sklearn_on_an_asymmetric_matrix():
    rng = np.random.default_rng(12)
    D = np.abs(_dist(_blobs_and_noise(rng, 50, 2)) + rng.normal(0, 0.2, (50, 50)))
    np.fill_diagonal(D, 0.0)
    np.testing.assert_array_equal(dbscan_precomputed(D, 1.0, 3), sklearn_precomputed(D, 1.0, 3))


def test_precomputed_refuses_a_non_square_matrix():
    with pytest.raises(ValueError, match="square"):
        dbscan_precomputed(np.zeros((3, 2)), 1.0, 2)


def test_dbscan_bins_precomputed_equals_per_bin_sklearn_including_empty_bins():
    rng = np.random.default_rng(10)
    sizes = [0, 5, 150, 1, 0, 37, 2, 80]
    mats = [_dist(_blobs_and_noise(rng, s, 6)) if s else np.empty((0, 0)) for s in sizes]
    mats[5][3, :] = mats[5][:, 3] = np.nan
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    boff = block_offsets(offsets)
    assert list(np.diff(boff)) == [s * s for s in sizes]
    D_flat = np.concatenate([m.ravel() for m in mats])
    ms = np.array([min(5, max(2, s // 4)) for s in sizes], dtype=np.int64)
    labels = dbscan_bins_precomputed(D_flat, offsets, 1.5, ms)
    for b in range(len(sizes)):
        s, e = offsets[b], offsets[b + 1]
        np.testing.assert_array_equal(labels[s:e], sklearn_precomputed(mats[b], 1.5, int(ms[b])), err_msg=f"bin {b}")
    with pytest.raises(ValueError, match="squared bin sizes"):
        dbscan_bins_precomputed(D_flat[:-1], offsets, 1.5, ms)


def test_precomputed_on_euclidean_distances_equals_the_euclidean_kernel():
    rng = np.random.default_rng(2)
    X = _blobs_and_noise(rng, 120, 4)
    np.testing.assert_array_equal(dbscan_precomputed(_dist(X), 1.1, 4), dbscan(X, 1.1, 4))
