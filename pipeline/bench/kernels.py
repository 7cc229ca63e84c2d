"""`mgold bench kernels`: rv_shift / resample / sed_recalibrate, Numba vs the numpy reference twins.

Baselines are the slow, obvious twins of tests/udfs/naive.py (loaded from the
checkout), timed in the same process on a few spectra; the Numba kernels run
over a batch of ~3900-pixel spectra with their batch drivers. Figures: spectra/s
for each and the ratio Numba / twin.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np

from . import benchmark

_NAIVE = Path(__file__).resolve().parents[2] / "tests" / "udfs" / "naive.py"


def _load_naive():
    if not _NAIVE.is_file():
        raise FileNotFoundError(f"{_NAIVE}: reference twins not found (run the benchmark from a source checkout)")
    spec = importlib.util.spec_from_file_location("mgold_bench_naive", _NAIVE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _rate(fn, n: int) -> float:
    t0 = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t0)


@benchmark("kernels")
def bench_kernels(n_spectra: int = 2000, n_naive: int = 4, n_pix: int = 3900, seed: int = 0) -> dict:
    """Spectra/s of each kernel (batch driver) and of its numpy twin, and their ratio."""
    from ..config import DEFAULT
    from mgold.udfs.grid import common_grid
    from mgold.udfs.resample import rest_frame_resample_batch
    from mgold.udfs.rv_shift import rv_shift_batch
    from mgold.udfs.sed_recalibrate import sed_recalibrate_batch

    naive = _load_naive()
    sp = DEFAULT.spectra
    rng = np.random.default_rng(seed)
    flux = (1 + 0.2 * rng.standard_normal((n_spectra, n_pix))).astype(np.float32)
    ivar = np.full((n_spectra, n_pix), 100.0, np.float32)
    ivar[rng.random((n_spectra, n_pix)) < 0.01] = 0
    l0 = sp.loglam0_native + rng.uniform(-2e-4, 2e-4, n_spectra)
    dl = np.full(n_spectra, sp.dloglam)
    rv = rng.normal(0, 50, n_spectra)
    offsets = np.arange(n_spectra + 1, dtype=np.int64) * n_pix
    fv, iv = flux.reshape(-1), ivar.reshape(-1)
    g0, gn = common_grid(sp.cluster_wave_min_aa, sp.cluster_wave_max_aa, sp.dloglam)
    # compile outside the timings
    rv_shift_batch(fv[:n_pix], iv[:n_pix], offsets[:2], l0[:1], dl[:1], rv[:1])
    rest_frame_resample_batch(fv[:n_pix], iv[:n_pix], offsets[:2], l0[:1], dl[:1], rv[:1], g0, sp.dloglam, gn)
    grid_flux, grid_ivar = rest_frame_resample_batch(fv, iv, offsets, l0, dl, rv, g0, sp.dloglam, gn)
    x = np.linspace(-1, 1, gn)
    model = (1 + 0.3 * np.sin(np.arange(gn) / 11.0)).astype(np.float32)
    models = np.broadcast_to(model, grid_flux.shape).copy()
    obs = (models * (1 + 0.1 * x - 0.1 * x**2) * (1 + 0.02 * rng.standard_normal(grid_flux.shape))).astype(np.float32)
    args = (sp.sedcal_poly_order, sp.sedcal_clip_nsigma, sp.sedcal_iterations)
    sed_recalibrate_batch(obs[:1], grid_ivar[:1], models[:1], *args)

    figures: dict = {"spectra": n_spectra, "pixels": n_pix, "grid_pixels": gn}
    cases = {
        "rv_shift": (lambda: rv_shift_batch(fv, iv, offsets, l0, dl, rv),
                     lambda r: naive.naive_rv_shift(flux[r], ivar[r], l0[r], dl[r], rv[r])),
        "rest_frame_resample": (
            lambda: rest_frame_resample_batch(fv, iv, offsets, l0, dl, rv, g0, sp.dloglam, gn),
            lambda r: naive.naive_resample(flux[r], ivar[r], l0[r] - np.log10(1 + rv[r] / 299792.458), dl[r],
                                           g0, sp.dloglam, gn)),
        "sed_recalibrate": (lambda: sed_recalibrate_batch(obs, grid_ivar, models, *args),
                            lambda r: naive.naive_sed_recalibrate(obs[r], grid_ivar[r], models[r], *args)),
    }
    for name, (fast, slow) in cases.items():
        fast_rate = _rate(fast, n_spectra)
        slow_rate = _rate(lambda: [slow(r) for r in range(n_naive)], n_naive)
        figures[f"{name}_numba_spectra_per_s"] = round(fast_rate, 1)
        figures[f"{name}_numpy_twin_spectra_per_s"] = round(slow_rate, 2)
        figures[f"{name}_ratio_numba_over_twin"] = round(fast_rate / slow_rate, 1)
    return figures
