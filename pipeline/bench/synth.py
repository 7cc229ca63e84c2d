"""`mgold bench synth`: synthetic-spectra generation + Parquet writing throughput.

Workload: the spectra of a universe of ``n_stars`` (about 1.6 spectra per star), generated
and written exactly as ``mgold synth make --format parquet`` does (intrinsic spectra,
observation kernel, Parquet batches). Baseline in the same process: drawing the same
number of float32 Gaussian deviates with numpy (the irreducible cost of the noise),
so the ratio says how many "noise draws" a full spectrum costs. Target: >= 2,000 spectra/s.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from . import benchmark


@benchmark("synth")
def bench_synth(n_stars: int = 5000, seed: int = 0) -> dict:
    """Spectra/s of the Parquet path and its cost relative to numpy noise generation."""
    from ..synth.make import write_spectra
    from ..synth.observe import N_PIX, Observer, make_visits
    from ..synth.presets import config_for
    from ..synth.stars import make_stars, stream

    cfg = config_for("tiny", seed=seed, sets=[f"synth.n_stars={n_stars}"])
    stars = make_stars(cfg.synth)
    visits = make_visits(cfg.synth, stars)
    n = int(visits["obsid"].size)
    # warm-up: compile the observation kernel outside the timing
    Observer(cfg.synth).observe(stars, visits, np.arange(8), stream(cfg.synth, "warmup"))

    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for start in range(0, n, cfg.synth.spectra_per_file):
        rng.standard_normal((min(cfg.synth.spectra_per_file, n - start), N_PIX), dtype=np.float32)
    t_base = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        files = write_spectra(cfg, Path(tmp), "parquet", stars, visits)
        t_synth = time.perf_counter() - t0
        n_bytes = sum((Path(tmp) / f["path"]).stat().st_size for f in files)
    return {
        "n_spectra": n,
        "seconds": round(t_synth, 3),
        "spectra_per_s": round(n / t_synth, 1),
        "mb_written_per_s": round(n_bytes / t_synth / 1e6, 1),
        "baseline_noise_draws_per_s": round(n / t_base, 1),
        "ratio_synth_over_noise_draw_time": round(t_synth / t_base, 2),
        "target_spectra_per_s": 2000,
        "meets_target": bool(n / t_synth >= 2000),
    }
