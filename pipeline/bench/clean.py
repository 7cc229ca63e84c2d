"""`mgold bench clean`: the spectra + clean layers end to end on a built preset.

Builds ``bench/warehouses/<preset>.duckdb`` up to the labels layer once (preset from
``MGOLD_BENCH_CLEAN_PRESET``, default ``tiny``; ``paper`` for the issue's full-stage
figure, which needs a far bigger machine than a 2-core laptop), then times a full
refresh of layer:spectra (rest frame, resampling, SED recalibration) and
layer:clean (bins, distance matrices, DBSCAN, queue, kept). Baseline, same
process: reading the labelled stars' raw spectra into Arrow once, the I/O floor
every spectra stage pays; ratios are stage time / that read.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from . import benchmark


@benchmark("clean")
def bench_clean(preset: str | None = None, warehouse: Path | None = None) -> dict:
    """Spectra prep + DBSCAN cleaning: spectra/s and ratio to a raw-spectra read."""
    from ..build import build, preset_config
    from ..runner import Project, run
    from ..warehouse import open_warehouse

    preset = preset or os.environ.get("MGOLD_BENCH_CLEAN_PRESET", "tiny")
    warehouse = Path(warehouse or Path("bench/warehouses") / f"{preset}.duckdb")
    cfg = preset_config(preset)
    # build skips what is fresh and refreshes what the code or config made stale
    build(warehouse, preset=preset, cfg=cfg, until="labels", echo=lambda s: None)
    project = Project.load()
    with open_warehouse(warehouse, command="bench clean") as con:
        t0 = time.perf_counter()
        n_raw = con.sql("select s.flux, s.ivar from lbl_labelled_sample l "
                        "join landing.lamost_spectra s using (obsid)").to_arrow_table().num_rows
        t_read = time.perf_counter() - t0
        secs = {}
        for layer in ("spectra", "clean"):
            t0 = time.perf_counter()
            res = run(con, project, cfg, select=f"layer:{layer}", full_refresh=True)
            secs[layer] = time.perf_counter() - t0
            bad = [r for r in res if r.status == "failed"]
            if bad:
                raise RuntimeError(f"{bad[0].name} failed: {bad[0].error}")
        n = con.execute("select count(*) from spc_cluster_grid").fetchone()[0]
        n_bins = con.execute("select count(distinct bin_id) from cln_dbscan").fetchone()[0]
    return {
        "preset": preset,
        "spectra": n,
        "bins": n_bins,
        "raw_read_s": round(t_read, 3),
        "spectra_layer_s": round(secs["spectra"], 3),
        "clean_layer_s": round(secs["clean"], 3),
        "spectra_per_s_full_stage": round(n / (secs["spectra"] + secs["clean"]), 1),
        "ratio_spectra_layer_to_raw_read": round(secs["spectra"] / t_read, 2) if t_read else None,
        "ratio_clean_layer_to_raw_read": round(secs["clean"] / t_read, 2) if t_read else None,
        "raw_read_rows": n_raw,
    }
