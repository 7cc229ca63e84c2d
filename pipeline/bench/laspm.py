"""`mgold bench laspm`: the LASPM template chi^2 engine against the machine's float32 GEMM rate.

Workload (issue 10): 5,105 templates x the red grid (6000-8800 AA at LAMOST sampling,
1,664 pixels), degree-2 Legendre polynomial, 0.2% masked template pixels (so the
template-mask GEMM runs: the general path), 1,024 observed spectra in batches of
``laspm.batch_spectra``. Figures:

- ``gemm_flops_per_spectrum``: what the formulation needs, 2 n_pix n_tmpl (3d+2+2);
- ``spectra_per_s`` of `fit_batch` end to end (operands, GEMMs, Numba screen, float64
  rescoring of the candidates, label interpolation);
- ``peak_fraction`` = gemm_flops_per_spectrum x spectra_per_s / the float32 GEMM rate of
  numpy matmul on the same shapes, measured interleaved with the engine in the same run;
- ``time_share_*``: where one batch's time goes;
- the same for a library without template masks (the mask GEMM is skipped);
- ratios against the slow lstsq twin (tests/udfs/naive.py) and a per-spectrum
  ``scipy.optimize.least_squares`` loop over templates (PyLASP's CPU path), both timed on a
  subsample of templates and extrapolated to the full library (named so in the figures);
- the BLAS library, its kernel (``architecture``) and threads from threadpoolctl, and the
  ``OPENBLAS_CORETYPE`` in force (reported, never changed).
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from . import benchmark
from .kernels import _load_naive

N_TEMPLATES = 5105      # the golden sample (paper §3)
DR11_SPECTRA = 898_350  # LAMOST DR11 M-type spectra parameterised in the paper (§4)


def _blas_info() -> dict:
    from threadpoolctl import threadpool_info

    blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    if not blas:
        return {"blas": "unknown"}
    b = blas[0]
    return {"blas": f"{b.get('internal_api')} {b.get('version')}", "blas_kernel": b.get("architecture"),
            "blas_threads": b.get("num_threads"), "blas_library": os.path.basename(b.get("filepath", "")),
            "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "unset")}


def _synthetic_library(rng, n_t: int, n_pix: int, bad_frac: float):
    i = np.arange(n_pix)
    flux = 1 + 0.3 * np.sin(i[None, :] / rng.uniform(3, 9, (n_t, 1)) + rng.uniform(0, 6, (n_t, 1)))
    flux = (flux * (1 + 0.02 * rng.standard_normal((n_t, n_pix)))).astype(np.float32)
    ivar = np.full((n_t, n_pix), 2500.0, np.float32)
    ivar[rng.random((n_t, n_pix)) < bad_frac] = 0
    labels = np.column_stack([rng.uniform(2800, 4000, n_t), rng.uniform(0.5, 5.2, n_t), rng.uniform(-1.5, 0.5, n_t)])
    return flux, ivar, labels


def _observations(rng, tmpl_flux, n_obs: int, snr: float = 30.0):
    n_pix = tmpl_flux.shape[1]
    x = np.linspace(-1, 1, n_pix)
    rows = rng.integers(0, tmpl_flux.shape[0], n_obs)
    clean = tmpl_flux[rows] * (1 + 0.1 * x)[None, :] * rng.uniform(0.5, 2, (n_obs, 1))
    flux = (clean * (1 + rng.standard_normal(clean.shape) / snr)).astype(np.float32)
    ivar = (snr**2 / clean**2).astype(np.float32)
    ivar[rng.random(ivar.shape) < 0.005] = 0
    return flux, ivar


def _gemm_seconds(lib, W, WF, L2) -> float:
    t0 = time.perf_counter()
    W @ lib.t2
    WF @ lib.t1
    if lib.tm is not None:
        L2 @ lib.tm
    return time.perf_counter() - t0


def _engine_vs_gemm(laspm, lib, flux, ivar, params, reps: int) -> dict:
    """Engine and reference GEMMs timed interleaved; rates from the summed times (robust to load swings)."""
    b = params.batch_spectra
    W, WF, L2, *_ = laspm.prepare_observations(flux[:b], ivar[:b], lib.pixel_mask, lib.tm is not None)
    laspm.fit_batch(flux[:2], ivar[:2], lib, params)             # compile / warm the caches
    _gemm_seconds(lib, W, WF, L2)
    t_engine = t_gemm = 0.0
    for _ in range(reps):
        t_gemm += _gemm_seconds(lib, W, WF, L2)
        t0 = time.perf_counter()
        laspm.fit_batch(flux, ivar, lib, params)
        t_engine += time.perf_counter() - t0
        t_gemm += _gemm_seconds(lib, W, WF, L2)
    flops = lib.gemm_flops_per_spectrum()
    gemm_rate = flops * W.shape[0] * 2 * reps / t_gemm
    spectra_per_s = flux.shape[0] * reps / t_engine
    return {"gemm_flops_per_spectrum": flops, "gemm_gflops_per_s": round(gemm_rate / 1e9, 1),
            "spectra_per_s": round(spectra_per_s, 1),
            "effective_gflops_per_s": round(flops * spectra_per_s / 1e9, 1),
            "peak_fraction": round(flops * spectra_per_s / gemm_rate, 3)}


def _time_shares(laspm, lib, flux, ivar, params) -> dict:
    """Where one batch's time goes (each step timed on its own)."""
    b = params.batch_spectra
    fo, io = flux[:b], ivar[:b]
    t = [time.perf_counter()]
    W, WF, L2, f64, w64, n_good, s_full = laspm.prepare_observations(fo, io, lib.pixel_mask, lib.tm is not None)
    t.append(time.perf_counter())
    G, B = W @ lib.t2, WF @ lib.t1
    SN = L2 @ lib.tm if lib.tm is not None else np.empty((0, lib.n_templates), np.float32)
    t.append(time.perf_counter())
    cand, _ = laspm.screen_pairs(G, B, SN, s_full, n_good, lib.alpha, params.n_candidates, params.min_overlap_frac)
    t.append(time.perf_counter())
    chi2, n_pair = laspm.rescore(f64, w64, lib.flux, lib.mask, lib.legendre, lib.alpha, cand)
    t.append(time.perf_counter())
    laspm.interpolate_labels(cand, chi2, n_pair, n_good, s_full, lib.labels, lib.on_hull, params.k_best,
                             lib.degree + 1, laspm.WEIGHTINGS.index(params.weighting), params.temperature,
                             params.edge_weight_min, params.min_overlap_frac, int(lib.pixel_mask.sum()),
                             params.min_good_pix_frac, params.poor_fit_chi2_nu)
    t.append(time.perf_counter())
    dt = np.diff(t)
    names = ("operands", "gemm", "screen", "rescore", "labels")
    return {f"time_share_{n}": round(float(d / dt.sum()), 4) for n, d in zip(names, dt)}


def _least_squares_seconds_per_pair(obs_f, obs_i, tmpl_f, degree: int) -> float:
    """PyLASP-style: scipy.optimize.least_squares on the weighted residuals of one pair at a time."""
    from scipy.optimize import least_squares

    n = obs_f.size
    V = np.polynomial.legendre.legvander(np.linspace(-1, 1, n), degree)
    good = obs_i > 0
    sw = np.sqrt(np.where(good, obs_i, 0.0))
    f = np.where(good, obs_f, 0.0)
    x0 = np.zeros(degree + 1)
    x0[0] = 1.0
    t0 = time.perf_counter()
    for t in range(tmpl_f.shape[0]):
        ft = tmpl_f[t].astype(np.float64)
        least_squares(lambda c: sw * (f - (V @ c) * ft), x0, method="lm")
    return (time.perf_counter() - t0) / tmpl_f.shape[0]


@benchmark("laspm")
def bench_laspm(n_templates: int = N_TEMPLATES, n_obs: int = 1024, n_twin_templates: int = 50,
                n_lsq_templates: int = 20, reps: int = 2, seed: int = 0) -> dict:
    """spectra/s and peak_fraction of the LASPM engine; ratios vs the lstsq twin and scipy least_squares."""
    from ..config import DEFAULT
    from mgold.udfs import laspm
    from mgold.udfs.grid import common_grid

    sp = DEFAULT.spectra
    params = dataclasses.replace(DEFAULT.laspm, poly_degree=2)
    loglam0, n_pix = common_grid(sp.red_wave_min_aa, sp.red_wave_max_aa, sp.dloglam)
    rng = np.random.default_rng(seed)
    tf, ti, labels = _synthetic_library(rng, n_templates, n_pix, bad_frac=0.002)
    flux, ivar = _observations(rng, tf, n_obs)
    figures: dict = {"templates": n_templates, "pixels": n_pix, "degree": params.poly_degree,
                     "spectra": n_obs, "batch_spectra": params.batch_spectra, **_blas_info()}

    t0 = time.perf_counter()
    lib = laspm.prepare_library(tf, ti, labels, params.poly_degree, loglam0, sp.dloglam)
    figures["library_prepare_s"] = round(time.perf_counter() - t0, 2)
    masked = _engine_vs_gemm(laspm, lib, flux, ivar, params, reps)
    figures.update(masked)
    figures.update(_time_shares(laspm, lib, flux, ivar, params))
    figures["dr11_minutes_at_this_rate"] = round(DR11_SPECTRA / masked["spectra_per_s"] / 60, 1)
    del lib

    full = laspm.prepare_library(tf, np.full_like(ti, 2500.0), labels, params.poly_degree, loglam0, sp.dloglam)
    for k, v in _engine_vs_gemm(laspm, full, flux, ivar, params, reps).items():
        figures[f"no_template_mask_{k}"] = v
    del full

    naive = _load_naive()
    sub = rng.choice(n_templates, n_twin_templates, replace=False)
    t0 = time.perf_counter()
    naive.naive_laspm_chi2(flux[:1], ivar[:1], tf[sub], ti[sub], params.poly_degree)
    twin_per_spectrum = (time.perf_counter() - t0) / n_twin_templates * n_templates
    lsq_per_spectrum = _least_squares_seconds_per_pair(flux[0], ivar[0], tf[sub[:n_lsq_templates]],
                                                       params.poly_degree) * n_templates
    rate = masked["spectra_per_s"]
    figures[f"twin_spectra_per_s_extrapolated_from_{n_twin_templates}_templates"] = round(1 / twin_per_spectrum, 4)
    figures[f"least_squares_s_per_spectrum_extrapolated_from_{n_lsq_templates}_templates"] = round(lsq_per_spectrum, 2)
    figures["ratio_engine_over_twin"] = round(rate * twin_per_spectrum, 1)
    figures["ratio_engine_over_least_squares"] = round(rate * lsq_per_spectrum, 1)
    return figures
