"""udfs/laspm.py: the LASPM template chi^2 engine (paper §4) against its lstsq twin, and its parameters / RV."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from naive import (C_KMS, assert_close, naive_hull_boundary, naive_laspm_chi2, naive_laspm_fit,
                   naive_rv_curve)

from mgold.pipeline.config import DEFAULT
from mgold.udfs import laspm
from mgold.udfs.grid import common_grid

SP = DEFAULT.spectra
RED_L0, RED_N = common_grid(SP.red_wave_min_aa, SP.red_wave_max_aa, SP.dloglam)
DL = SP.dloglam


def _params(**kw):
    return dataclasses.replace(DEFAULT.laspm, **kw)


def _random_library(rng, n_t, n_pix, snr=100.0):
    """Line-rich positive templates with per-template noise levels (ivar only masks)."""
    i = np.arange(n_pix)
    flux = 1 + 0.3 * np.sin(i[None, :] / rng.uniform(3, 9, (n_t, 1)) + rng.uniform(0, 6, (n_t, 1)))
    flux *= 1 + 0.05 * rng.standard_normal((n_t, n_pix))
    ivar = np.full((n_t, n_pix), snr**2, np.float32)
    return flux.astype(np.float32), ivar


def _observe(rng, tmpl_flux, rows, snr):
    """Templates ``rows`` times a random quadratic, plus noise of the given S/N."""
    n_pix = tmpl_flux.shape[1]
    x = np.linspace(-1, 1, n_pix)
    poly = rng.uniform(0.5, 3, (len(rows), 1)) * (1 + rng.uniform(-0.2, 0.2, (len(rows), 1)) * x
                                                  + rng.uniform(-0.1, 0.1, (len(rows), 1)) * x**2)
    clean = tmpl_flux[rows] * poly
    sigma = np.nanmean(clean, axis=1, keepdims=True) / snr
    flux = clean + sigma * rng.standard_normal(clean.shape)
    ivar = np.broadcast_to(1 / sigma**2, clean.shape).astype(np.float32).copy()
    return flux.astype(np.float32), ivar


def _check_against_twin(of, oi, tf, ti, labels, degree, k=4, pixel_mask=None, **kw):
    lib = laspm.prepare_library(tf, ti, labels, degree, RED_L0, DL, pixel_mask)
    params = _params(poly_degree=degree, k_best=k, **kw)
    got = laspm.fit_batch(of, oi, lib, params)
    want = naive_laspm_fit(of, oi, tf, ti, labels, degree, k, params.weighting, params.temperature,
                           params.min_overlap_frac, pixel_mask)
    np.testing.assert_array_equal(got.best_idx, want[0])
    assert_close(got.best_chi2, want[1], "chi2 of the k best")
    assert_close(got.labels, want[2], "labels")
    assert_close(got.labels_err, want[3], "label errors")
    return got, lib


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_best_templates_and_chi2_match_the_lstsq_twin_for_each_degree(degree):
    rng = np.random.default_rng(degree)
    tf, ti = _random_library(rng, 30, 300)
    tf[3, 17] = np.nan                        # a NaN template pixel is a masked pixel
    ti[5, 40:60] = 0
    of, oi = _observe(rng, tf, rng.integers(0, 30, 6), snr=30)
    _check_against_twin(of, oi, tf, ti, rng.normal(size=(30, 3)), degree)


def test_masked_observed_pixels_and_nan_input_are_bad_pixels():
    rng = np.random.default_rng(10)
    tf, ti = _random_library(rng, 25, 400)
    of, oi = _observe(rng, tf, [1, 2, 3, 4], snr=40)
    oi[0, rng.random(400) < 0.1] = 0
    of[1, ::7] = np.nan
    oi[2, ::11] = np.inf
    oi[3, 100:300] = -1                       # negative ivar = bad
    got, _ = _check_against_twin(of, oi, tf, ti, rng.normal(size=(25, 2)), 2)
    assert got.n_good_pix[3] == 200 and np.all(np.isfinite(got.labels))


def test_partial_template_coverage_is_masked_and_ranked_per_degree_of_freedom():
    """A MILES-like library: some templates cover only the blue 60% of the grid; the rest is masked, and a
    short template cannot win by having fewer pixels to misfit."""
    rng = np.random.default_rng(11)
    tf, ti = _random_library(rng, 30, 500)
    ti[::3, 300:] = 0
    tf[::3, 300:] = np.nan                    # outside the template's coverage: not even a number
    of, oi = _observe(rng, tf, [1, 2, 3, 4, 5, 6], snr=30)
    got, lib = _check_against_twin(of, oi, tf, ti, rng.normal(size=(30, 3)), 2)
    assert lib.tm is not None
    np.testing.assert_array_equal(got.best_idx[:, 0], [1, 2, 3, 4, 5, 6])
    assert got.n_fit_pix[2] == 300 and got.n_fit_pix[0] == 500


def test_grid_pixel_mask_removes_windows_from_every_pair():
    rng = np.random.default_rng(12)
    tf, ti = _random_library(rng, 20, RED_N)
    of, oi = _observe(rng, tf, [0, 7], snr=30)
    pm = laspm.pixel_mask_outside(RED_L0, DL, RED_N, (6860.0, 6935.0, 7585.0, 7705.0))
    wave = 10 ** (RED_L0 + DL * np.arange(RED_N))
    assert not pm[(wave > 6861) & (wave < 6934)].any() and pm[wave < 6850].all()
    of[:, ~pm] = 1e6                          # garbage inside the windows must not matter
    got, _ = _check_against_twin(of, oi, tf, ti, rng.normal(size=(20, 3)), 2, pixel_mask=pm)
    assert np.all(got.n_good_pix == pm.sum())


def test_no_good_pixel_gives_nan_labels_and_flags_without_crashing():
    rng = np.random.default_rng(13)
    tf, ti = _random_library(rng, 10, 200)
    of, oi = _observe(rng, tf, [0, 1, 2], snr=30)
    oi[0] = 0
    of[1] = np.nan
    oi[2, np.arange(200) % 10 > 0] = 0       # 20 good pixels: fitted, flagged
    lib = laspm.prepare_library(tf, ti, rng.normal(size=(10, 3)), 2, RED_L0, DL)
    got = laspm.fit_batch(of, oi, lib, _params())
    for r in (0, 1):
        assert got.flags[r] & laspm.FLAG_NO_FIT and got.flags[r] & laspm.FLAG_FEW_PIXELS
        assert np.all(np.isnan(got.labels[r])) and np.all(got.best_idx[r] == -1) and np.isnan(got.chi2_min[r])
    assert got.flags[2] & laspm.FLAG_FEW_PIXELS and not got.flags[2] & laspm.FLAG_NO_FIT
    assert np.all(np.isfinite(got.labels[2]))


def test_one_template_library_returns_it_with_zero_spread():
    rng = np.random.default_rng(14)
    tf, ti = _random_library(rng, 1, 300)
    of, oi = _observe(rng, tf, [0, 0], snr=20)
    got, _ = _check_against_twin(of, oi, tf, ti, [[3500.0, 4.7, -0.2]], 2, k=5)
    assert np.all(got.best_idx[:, 0] == 0) and np.all(got.best_idx[:, 1:] == -1)
    assert np.all(got.labels == [3500.0, 4.7, -0.2]) and np.all(got.labels_err == 0)


def test_empty_batch_and_empty_library():
    rng = np.random.default_rng(15)
    tf, ti = _random_library(rng, 5, 100)
    lib = laspm.prepare_library(tf, ti, rng.normal(size=(5, 3)), 2, RED_L0, DL)
    got = laspm.fit_batch(np.empty((0, 100), np.float32), np.empty((0, 100), np.float32), lib, _params())
    assert got.labels.shape == (0, 3) and got.best_idx.shape == (0, DEFAULT.laspm.k_best)
    empty = laspm.prepare_library(np.empty((0, 100)), np.empty((0, 100)), np.empty((0, 3)), 2, RED_L0, DL)
    of, oi = _observe(rng, tf, [0], snr=20)
    got = laspm.fit_batch(of, oi, empty, _params())
    assert got.flags[0] & laspm.FLAG_NO_FIT and np.isnan(got.labels).all()


@pytest.mark.parametrize("snr", [300.0, 3000.0])
def test_float64_rescoring_keeps_high_snr_fits_exact(snr):
    """float32 sums lose ~1e-6 of sum w f^2 ~ (S/N)^2 n_pix: the exact refit of the candidates still
    reproduces the twin's best templates and chi2."""
    rng = np.random.default_rng(int(snr))
    tf, ti = _random_library(rng, 40, RED_N, snr=1e4)
    near = tf[:8] * (1 + 1e-3 * rng.standard_normal((8, RED_N)))   # near-duplicates of the truth
    tf = np.vstack([tf, near]).astype(np.float32)
    ti = np.vstack([ti, ti[:8]])
    of, oi = _observe(rng, tf, [0, 1, 2, 3], snr=snr)
    _check_against_twin(of, oi, tf, ti, rng.normal(size=(48, 3)), 2, k=3)


def test_float32_screen_error_stays_within_float32_sums():
    rng = np.random.default_rng(16)
    tf, ti = _random_library(rng, 30, RED_N)
    ti[::4, :200] = 0
    of, oi = _observe(rng, tf, [0, 5, 9], snr=50)
    lib = laspm.prepare_library(tf, ti, np.zeros((30, 1)), 2, RED_L0, DL)
    W, WF, L2, f64, w64, n_good, s_full = laspm.prepare_observations(of, oi, lib.pixel_mask, True)
    idx, r = laspm.screen_pairs(W @ lib.t2, WF @ lib.t1, L2 @ lib.tm, s_full, n_good, lib.alpha, 30, 0.5)
    chi2, n_pair, n_o = naive_laspm_chi2(of, oi, tf, ti, 2)
    want = chi2 * (n_o[:, None] - 3) / (n_pair - 3)
    got = np.take_along_axis(want, idx, axis=1)
    for o in range(3):
        assert np.all(np.diff(r[o]) >= 0)
        assert np.all(np.abs(r[o] - got[o]) <= 1e-5 * s_full[o] + 1e-4 * got[o])


def test_batching_does_not_change_results():
    rng = np.random.default_rng(17)
    tf, ti = _random_library(rng, 20, 200)
    of, oi = _observe(rng, tf, rng.integers(0, 20, 9), snr=25)
    lib = laspm.prepare_library(tf, ti, rng.normal(size=(20, 3)), 2, RED_L0, DL)
    one = laspm.fit_batch(of, oi, lib, _params(batch_spectra=100))
    many = laspm.fit_batch(of, oi, lib, _params(batch_spectra=4))
    for a, b in zip(one, many):
        np.testing.assert_array_equal(a, b)


def test_leaving_each_template_out_is_fitting_against_a_library_without_it():
    rng = np.random.default_rng(18)
    tf, ti = _random_library(rng, 24, 200)
    of, oi = _observe(rng, tf, np.arange(24), snr=30)          # each observation is its own template, noisy
    labels = rng.normal(size=(24, 3))
    params = _params(k_best=4, n_candidates=8)
    lib = laspm.prepare_library(tf, ti, labels, 2, RED_L0, DL)
    loo = laspm.fit_batch(of, oi, lib, params, exclude=np.arange(24))
    assert not (loo.best_idx == np.arange(24)[:, None]).any()     # never itself
    assert (laspm.fit_batch(of, oi, lib, params).best_idx[:, 0] == np.arange(24)).all()   # else itself, first
    for i in (0, 7, 23):                                          # the twin: a library without template i
        others = np.delete(np.arange(24), i)
        sub = laspm.prepare_library(tf[others], ti[others], labels[others], 2, RED_L0, DL)
        want = laspm.fit_batch(of[i:i + 1], oi[i:i + 1], sub, params)
        np.testing.assert_array_equal(loo.best_idx[i], others[want.best_idx[0]])
        np.testing.assert_allclose(loo.labels[i], want.labels[0], rtol=1e-12)
        np.testing.assert_allclose(loo.best_chi2[i], want.best_chi2[0], rtol=1e-12)
    whole = laspm.fit_batch(of, oi, lib, _params(k_best=4, n_candidates=24), exclude=np.arange(24))
    assert (whole.best_idx >= 0).all() and not (whole.best_idx == np.arange(24)[:, None]).any()
    np.testing.assert_array_equal(laspm.without_excluded(np.array([[3, 1, 2], [4, 5, -1]]), np.array([1, 9]), 2),
                                  [[3, 2], [4, 5]])
    with pytest.raises(ValueError, match="one template row per observation"):
        laspm.fit_batch(of, oi, lib, params, exclude=np.arange(3))


# ----------------------------------------------------------------------------- parameters

def _smooth_spectra(labels, n_pix, pix=None):
    """Spectra that are a smooth function of (teff-like, logg-like, mh-like) labels in [0, 1]^3, drawn at the
    pixels of an n_pix grid or at fractional pixel positions ``pix`` (rows, n) of that grid."""
    i = np.arange(n_pix)[None, :] if pix is None else pix
    a, b, c = (labels[:, j:j + 1] for j in range(3))
    centres = np.linspace(20, n_pix - 20, 40)
    out = 1.0 + 0.4 * a * (i / n_pix)
    for q, mu in enumerate(centres):
        depth = 0.2 + 0.08 * (np.sin(q) * a + np.cos(1.7 * q) * b + np.sin(2.3 * q + 1) * c)   # monotonic
        out = out - depth * np.exp(-0.5 * ((i - mu) / (2.0 + a)) ** 2)
    return out


def _label_grid(step):
    g = np.arange(0, 1 + 1e-9, step)
    return np.array(np.meshgrid(g, g, g, indexing="ij")).reshape(3, -1).T


def test_interpolated_labels_recover_off_grid_stars_better_than_the_nearest_template():
    rng = np.random.default_rng(20)
    step = 0.2
    lab_lib = _label_grid(step)
    tf = _smooth_spectra(lab_lib, RED_N).astype(np.float32)
    ti = np.full(tf.shape, 1e6, np.float32)
    truth = rng.uniform(0.15, 0.85, (40, 3))
    clean = _smooth_spectra(truth, RED_N) * (1 + 0.1 * np.linspace(-1, 1, RED_N))
    of = (clean * (1 + rng.standard_normal(clean.shape) / 100)).astype(np.float32)
    oi = (1e4 / clean**2).astype(np.float32)
    got, lib = _check_against_twin(of, oi, tf, ti, lab_lib, 2, k=10)
    assert lib.on_hull.sum() == 6**3 - 4**3
    err = np.abs(got.labels - truth)
    nearest = np.abs(lab_lib[got.best_idx[:, 0]] - truth)
    assert err.mean() < 0.6 * nearest.mean() and err.mean() < 0.25 * step
    assert np.all(got.labels_err > 0)
    assert not np.any(got.flags & laspm.FLAG_EDGE_OF_LIBRARY)


def test_stars_beyond_the_library_are_flagged_edge_and_fits_to_the_wrong_model_poor():
    rng = np.random.default_rng(21)
    lab_lib = _label_grid(0.25)
    tf = _smooth_spectra(lab_lib, RED_N).astype(np.float32)
    ti = np.full(tf.shape, 1e6, np.float32)
    truth = np.array([[1.3, 1.3, 1.3], [-0.3, -0.3, -0.3], [0.5, 0.5, 0.5]])
    clean = _smooth_spectra(truth, RED_N)
    of = (clean * (1 + rng.standard_normal(clean.shape) / 200)).astype(np.float32)
    oi = (4e4 / clean**2).astype(np.float32)
    lib = laspm.prepare_library(tf, ti, lab_lib, 2, RED_L0, DL)
    got = laspm.fit_batch(of, oi, lib, _params(k_best=5))
    edge = (got.flags & laspm.FLAG_EDGE_OF_LIBRARY) > 0
    np.testing.assert_array_equal(edge, [True, True, False])
    np.testing.assert_array_equal((got.flags & laspm.FLAG_POOR_FIT) > 0, [True, True, False])
    assert got.chi2_nu[2] < 1.5


def test_weightings_follow_their_definitions():
    rng = np.random.default_rng(22)
    tf, ti = _random_library(rng, 20, 300)
    of, oi = _observe(rng, tf, [2, 3], snr=5)
    labels = rng.normal(size=(20, 3))
    for w in laspm.WEIGHTINGS:
        _check_against_twin(of, oi, tf, ti, labels, 2, k=6, weighting=w, temperature=3.0)
    lib = laspm.prepare_library(tf, ti, labels, 2, RED_L0, DL)
    with pytest.raises(ValueError, match="laspm.weighting"):
        laspm.fit_batch(of, oi, lib, _params(weighting="softmax"))


@pytest.mark.parametrize("seed", range(4))
def test_hull_boundary_matches_the_linear_programming_twin(seed):
    rng = np.random.default_rng(seed)
    pts = rng.normal(size=(40, 3))
    pts[5] = pts[0]                                   # a duplicated point
    if seed == 1:
        pts[:, 2] = 0.1                               # flat library: a constant label
    if seed == 2:
        pts = np.round(pts)                           # many coplanar / repeated points on faces
    if seed == 3:
        pts = _label_grid(0.25)                       # a grid: faces and edges, not only the 8 corners
    np.testing.assert_array_equal(laspm.hull_boundary(pts), naive_hull_boundary(pts))


def test_legendre_products_expand_every_product():
    x = np.linspace(-1, 1, 17)
    for d in range(5):
        alpha = laspm.legendre_products(d)
        L = np.polynomial.legendre.legvander(x, 2 * d)
        for j in range(d + 1):
            for k in range(d + 1):
                np.testing.assert_allclose(L[:, j] * L[:, k], L @ alpha[j, k], atol=1e-12)


def test_library_errors_name_the_row_and_the_cause():
    tf = np.ones((3, 10), np.float32)
    with pytest.raises(ValueError, match="row 1: labels not finite"):
        laspm.prepare_library(tf, tf, [[1.0], [np.nan], [2.0]], 2, RED_L0, DL)
    with pytest.raises(ValueError, match="3 templates but 2 label rows"):
        laspm.prepare_library(tf, tf, [[1.0], [2.0]], 2, RED_L0, DL)
    lib = laspm.prepare_library(tf, tf, [[1.0], [2.0], [3.0]], 2, RED_L0, DL)
    with pytest.raises(ValueError, match=r"must be \(n_obs, 10\)"):
        laspm.fit_batch(np.ones((2, 11)), np.ones((2, 11)), lib, _params())
    with pytest.raises(ValueError, match="poly_degree is 1"):
        laspm.fit_batch(np.ones((2, 10)), np.ones((2, 10)), lib, _params(poly_degree=1))


# ----------------------------------------------------------------------------- RV

NATIVE_L0 = SP.loglam0_native
NATIVE_N = 3909


def _native_observation(labels, rv_kms, snr, rng):
    """Spectra of ``labels`` observed at ``rv_kms`` on the LAMOST native grid: the smooth label model drawn
    at the rest-frame position (in red-grid pixels) of each native pixel, lambda_rest = lambda_obs / (1 + v/c)."""
    loglam_obs = NATIVE_L0 + DL * np.arange(NATIVE_N)
    pix = (loglam_obs[None, :] - np.log10(1 + np.asarray(rv_kms)[:, None] / C_KMS) - RED_L0) / DL
    clean = _smooth_spectra(labels, RED_N, pix)
    flux = (clean * (1 + rng.standard_normal(clean.shape) / snr)).astype(np.float32)
    ivar = np.full(flux.shape, snr**2, np.float32)
    return flux, ivar


def test_rv_is_recovered_on_shifted_spectra_and_flagged_as_fitted():
    rng = np.random.default_rng(30)
    lab_lib = _label_grid(0.25)
    lib = laspm.prepare_library(_smooth_spectra(lab_lib, RED_N), np.full((len(lab_lib), RED_N), 1e6),
                                lab_lib, 2, RED_L0, DL)
    truth = rng.uniform(0.1, 0.9, (6, 3))
    rv_true = np.array([-420.0, -133.3, -12.0, 0.0, 57.5, 310.0])
    flux, ivar = _native_observation(truth, rv_true, 80.0, rng)
    offsets = np.arange(7) * NATIVE_N
    l0, dl = np.full(6, NATIVE_L0), np.full(6, DL)
    header = np.where(np.arange(6) % 2 == 0, np.nan, rv_true)       # every other header RV missing
    got = laspm.fit_observed(flux.ravel(), ivar.ravel(), offsets, l0, dl, header, lib, _params())
    missing = np.isnan(header)
    np.testing.assert_array_equal(got.rv_fitted, missing)
    assert np.all(np.abs(got.rv_used_kms - rv_true)[missing] < 3.0)     # 1/23 of a 69 km/s pixel
    assert np.all(got.rv_err_kms[missing] < 3.0)
    np.testing.assert_array_equal(got.rv_used_kms[~missing], rv_true[~missing])
    assert np.all((got.fit.flags & laspm.FLAG_RV_MISSING > 0) == missing)
    assert not np.any(got.fit.flags & laspm.FLAG_RV_FIT_POOR)
    known = laspm.fit_observed(flux.ravel(), ivar.ravel(), offsets, l0, dl, rv_true, lib, _params())
    assert np.all(np.abs(got.fit.labels - known.fit.labels) < 0.05)


def test_rv_curve_matches_the_twin_and_pure_noise_is_flagged_poor():
    rng = np.random.default_rng(31)
    lab_lib = _label_grid(0.5)
    tf = _smooth_spectra(lab_lib, RED_N)
    ti = np.full(tf.shape, 1e6)
    lib = laspm.prepare_library(tf, ti, lab_lib, 2, RED_L0, DL)
    flux, ivar = _native_observation(lab_lib[[4]], np.array([80.0]), 50.0, rng)
    flux[0, ::13] = np.nan
    noise = (1 + rng.standard_normal(NATIVE_N) / 50).astype(np.float32)
    vel = np.array([-200.0, 0.0, 75.0, 80.0, 85.0])
    idx = np.array([[4, 0, 1]])
    curve, _ = laspm.rv_scan_batch(flux[0], ivar[0], np.array([0, NATIVE_N]), np.array([NATIVE_L0]),
                                   np.array([DL]), idx, lib.flux, lib.mask.astype(float), RED_L0, DL, lib.alpha, vel)
    want = naive_rv_curve(flux[0], ivar[0], NATIVE_L0, DL, tf[idx[0]], ti[idx[0]], RED_L0, DL, vel, 2)
    assert_close(curve[0], want, "reduced chi2 curve")
    res = laspm.fit_rv_batch(noise, ivar[0], np.array([0, NATIVE_N]), [NATIVE_L0], [DL], idx, lib, _params())
    assert not res.rv_ok[0]
