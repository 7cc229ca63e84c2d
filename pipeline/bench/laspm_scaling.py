"""`mgold bench laspm_scaling`: `mgold laspm run` end to end at 10k, 30k and 100k spectra.

Each size is its own synthetic universe (tiny preset, ``synth.n_stars`` scaled), ingested
(adopted, stored once) into a fresh warehouse with the model-SED library written to
``landing.library_spectra``; then ``mgold laspm run`` runs in a child process (read the
Parquet spectra -> rest frame -> chi^2 -> lsp_results), which reports its spectra/s and its
peak RSS. The figure is whether spectra/s and peak RSS stay flat with size (and RSS < 4 GB).
``MGOLD_BENCH_LASPM_SIZES`` overrides the sizes (comma separated).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import benchmark

SIZES = (10_000, 30_000, 100_000)
LIBRARY = "bench_model_grid"


def _warehouse(root: Path, n_spectra: int) -> Path:
    """A warehouse of ~n_spectra synthetic spectra and the model-SED grid as an ingested library."""
    from ..build import build, preset_config
    from ..ingest.library import model_grid_library
    from ..synth.presets import expected_spectra
    from ..warehouse import open_warehouse

    probe = preset_config("tiny")
    n_stars = max(100, int(probe.synth.n_stars * n_spectra / expected_spectra(probe)))
    cfg = preset_config("tiny", sets=[f"synth.n_stars={n_stars}"])
    w = root / f"w{n_spectra}.duckdb"
    build(w, preset="tiny", cfg=cfg, until="ingest", echo=lambda _m: None)
    with open_warehouse(w, command="bench laspm_scaling") as con:
        lib = model_grid_library(con.sql("select * from landing.model_sed_grid").to_arrow_table(), cfg)
        lib = lib.set_column(0, "library", [[LIBRARY] * lib.num_rows])
        con.register("_lib", lib)
        con.execute("create or replace table landing.library_spectra as select * from _lib")
        con.unregister("_lib")
    return w


@benchmark("laspm_scaling")
def bench_laspm_scaling(sizes: tuple[int, ...] | None = None) -> dict:
    """spectra/s and peak RSS of `mgold laspm run` per size; flat = the engine streams in bounded memory."""
    env = os.environ.get("MGOLD_BENCH_LASPM_SIZES")
    sizes = sizes or (tuple(int(s) for s in env.split(",")) if env else SIZES)
    out: dict = {"library": f"{LIBRARY} (the synthetic model-SED grid, 884 templates)"}
    with tempfile.TemporaryDirectory(prefix="mgold-bench-laspm-") as tmp:
        for n in sizes:
            w = _warehouse(Path(tmp), n)
            t0 = time.perf_counter()
            res = subprocess.run([sys.executable, "-m", "mgold.pipeline.cli", "laspm", "run", "--library", LIBRARY,
                                  "-w", str(w)], capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if res.returncode != 0:
                raise RuntimeError(f"laspm run at {n} spectra failed: {res.stderr.strip().splitlines()[-1:]}")
            m = re.search(r"([\d,]+) spectra \(built\); ([\d.]+) s, ([\d,]+) spectra/s; peak RSS ([\d.]+) GB",
                          res.stdout)
            if not m:
                raise RuntimeError(f"unexpected laspm run output: {res.stdout[-300:]}")
            fitted, secs, rate, rss = (int(m[1].replace(",", "")), float(m[2]), float(m[3].replace(",", "")),
                                       float(m[4]))
            out[f"n{n}_spectra"] = fitted
            out[f"n{n}_spectra_per_s"] = rate
            out[f"n{n}_peak_rss_gb"] = rss
            out[f"n{n}_wall_s"] = round(wall, 1)
            out[f"n{n}_seconds_in_run"] = secs
    rates = [out[f"n{n}_spectra_per_s"] for n in sizes]
    out["rate_ratio_largest_to_smallest"] = round(rates[-1] / rates[0], 3)
    out["peak_rss_max_gb"] = max(out[f"n{n}_peak_rss_gb"] for n in sizes)
    return out
