"""Benchmark ``ingest``: LAMOST FITS -> Parquet throughput for .fits and .fits.gz.

Synthesises N DR8-layout files (5-row primary image, written with astropy) and
gzip copies in a temp dir, then times, in this process:

* baseline: ``astropy.io.fits.open`` + read the data array of every file (no header
  parsing beyond astropy's own, no writing): what a naive reader costs;
* ``ingest_lamost`` on the .fits folder and on the .fits.gz folder, each into a
  fresh warehouse, as a user gets it (``ingest.workers``, the pool only from
  ``ingest.pool_min_files`` files), then with the pool forced on and with one
  process (how much the pool buys on this machine at this batch size).
"""

from __future__ import annotations

import gzip
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from . import benchmark

N_PIXELS = 3909
LOGLAM0, DLOGLAM = 3.5682, 1e-4


def write_dr8_fits(path: Path, obsid: int, rng: np.random.Generator, n_pixels: int = N_PIXELS,
                   header: dict | None = None, flux: np.ndarray | None = None,
                   ivar: np.ndarray | None = None, wave: np.ndarray | None = None) -> Path:
    """Write one DR8-layout LAMOST LRS file (5xN primary image) with astropy.

    ``header`` overrides/adds cards (value None deletes a card); arrays default to a
    smooth M-dwarf-like continuum with noise. ``.gz`` names are gzip-compressed.
    """
    from astropy.io import fits

    i = np.arange(n_pixels)
    wave = 10 ** (LOGLAM0 + DLOGLAM * i) if wave is None else wave
    if flux is None:
        flux = (50 + 100 * (wave - 3700) / 5400 + rng.normal(0, 2, n_pixels))
    if ivar is None:
        ivar = np.full(n_pixels, 0.25)
    ormask = np.zeros(n_pixels)
    ormask[rng.integers(0, n_pixels, 5)] = 1 << 23
    data = np.vstack([flux, ivar, wave, np.zeros(n_pixels), ormask]).astype(np.float32)
    cards = {
        "OBSID": obsid, "DATA_V": "LAMOST DR8",
        "EXTEN0": "Flux, Inverse, Wavelength, Andmask, Ormask",
        "DESIG": f"LAMOST J{obsid % 240000:06d}.00+000000.0", "RA": float(obsid % 360),
        "DEC": 10.0, "CLASS": "STAR", "SUBCLASS": "dM2", "Z": 1e-4, "Z_ERR": 1e-5,
        "SNRU": 1.0, "SNRG": 5.0, "SNRR": 20.0, "SNRI": 40.0, "SNRZ": 45.0,
        "LMJD": 58000, "MJD": 57999, "PLANID": "SYNTH01", "SPID": obsid % 16 + 1,
        "FIBERID": obsid % 250 + 1, "COEFF0": LOGLAM0, "COEFF1": DLOGLAM,
        "VERSPIPE": "v2.9.8",
    }
    cards.update(header or {})
    hdu = fits.PrimaryHDU(data)
    for key, value in cards.items():
        if value is not None:
            hdu.header[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        raw = path.with_name(path.name[:-3] + ".tmp")
        hdu.writeto(raw, overwrite=True)
        path.write_bytes(gzip.compress(raw.read_bytes(), compresslevel=6))
        raw.unlink()
    else:
        hdu.writeto(path, overwrite=True)
    return path


@benchmark("ingest")
def bench_ingest(n_files: int = 2000, workers: int | None = None) -> dict:
    """LAMOST ingest throughput (spectra/s) for .fits and .fits.gz vs an astropy read baseline."""
    from astropy.io import fits

    from ..config import DEFAULT
    from ..ingest.lamost import ingest_lamost
    from ..warehouse import open_warehouse

    cfg = DEFAULT
    workers = workers or cfg.ingest.workers
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory(prefix="mgold-bench-ingest-") as tmp:
        root = Path(tmp)
        plain = [write_dr8_fits(root / "fits" / f"spec-{k:06d}.fits", 10_000_000 + k, rng)
                 for k in range(n_files)]
        (root / "gz").mkdir()
        for p in plain:
            (root / "gz" / (p.name + ".gz")).write_bytes(gzip.compress(p.read_bytes(), 6))

        t0 = time.perf_counter()
        for p in plain:
            with fits.open(p, memmap=False) as h:
                np.array(h[0].data)
        t_astropy = time.perf_counter() - t0

        pooled = cfg.with_overrides({"ingest.pool_min_files": 0})

        def timed(folder: str, n_workers: int, run_cfg=cfg) -> float:
            wh = root / f"w_{folder}_{n_workers}_{run_cfg.ingest.pool_min_files}.duckdb"
            t = time.perf_counter()
            with open_warehouse(wh, command="bench ingest") as con:
                report = ingest_lamost(con, [root / folder], run_cfg, workers=n_workers)
            elapsed = time.perf_counter() - t
            if report.rows_loaded != n_files or report.rejected:
                raise RuntimeError(f"ingest of {folder} landed {report.rows_loaded}/{n_files} "
                                   f"({report.rejected} rejected)")
            return elapsed

        # as a user gets it (the pool only from ingest.pool_min_files), then pool forced / off
        t_fits = timed("fits", workers)
        t_gz = timed("gz", workers)
        t_pool = timed("fits", workers, pooled)
        t_pool_gz = timed("gz", workers, pooled)
        t_one = timed("fits", 1)
        t_one_gz = timed("gz", 1)
    return {
        "n_files": n_files,
        "workers": workers,
        "cpu_count": os.cpu_count(),
        "fits_spectra_per_s": round(n_files / t_fits, 1),
        "fits_gz_spectra_per_s": round(n_files / t_gz, 1),
        "fits_spectra_per_s_pool_forced": round(n_files / t_pool, 1),
        "fits_gz_spectra_per_s_pool_forced": round(n_files / t_pool_gz, 1),
        "fits_spectra_per_s_1_worker": round(n_files / t_one, 1),
        "astropy_read_only_spectra_per_s": round(n_files / t_astropy, 1),
        "ratio_fits_gz_over_fits": round(t_fits / t_gz, 3),
        "ratio_fits_ingest_over_astropy_read": round(t_astropy / t_fits, 3),
        "ratio_pool_over_1_worker": round(t_one / t_pool, 3),
        "ratio_pool_over_1_worker_gz": round(t_one_gz / t_pool_gz, 3),
        "target_fits_spectra_per_s": 500,
        "pool_min_files": cfg.ingest.pool_min_files,
    }
