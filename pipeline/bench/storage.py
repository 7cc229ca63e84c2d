"""`mgold bench storage`: spectra Parquet layouts, measured on realistic spectra.

Workload: ``n_spectra`` synthetic spectra made by the synthetic universe's observation
code (``synth.observe.Observer``, tiny preset), and every real LAMOST file under
``../shared/data/real/lamost`` when that folder is present (read with
``ingest.lamost_fits.read_spectrum``). Each candidate layout writes the landing spectra
table (``obsid, loglam0, dloglam, flux, ivar, pixmask``) and is measured on:

* bytes per spectrum on disk (synthetic and real);
* write throughput, MB/s of raw arrays (flux + ivar float32, pixmask int32) per second;
* read throughput, spectra/s reading flux + ivar back to flat numpy arrays through
  ``pyarrow.parquet.read_table`` and through DuckDB ``read_parquet`` (best of
  ``repeats``, per wall-second and per CPU-second), each layout's file asserted
  bit-identical to what was written (flux, ivar and pixmask);
* per-column bytes of the chosen layout, and row groups of 1k/2k/4k spectra.

Baselines in the same run: ``before_ingest`` (the ingest options before this benchmark:
zstd-1, PLAIN floats) and ``before_synth`` (the synthetic writer's: uncompressed).
``chosen`` is what ingest writes now (``lamost.PARQUET_OPTIONS`` / ``SPECTRA_SCHEMA`` at
``ingest.spectra_per_row_group``); ratios are chosen / before_ingest.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import benchmark

REAL_LAMOST = Path(__file__).resolve().parents[3] / "shared" / "data" / "real" / "lamost"
SCALARS = ["obsid", "loglam0", "dloglam"]
READ_BATCH = 2048                  # spectra per record batch read back (DuckDB's vector size)
# the ingest writer's options before this benchmark chose new ones (the "before")
BEFORE_INGEST = dict(use_dictionary=["obsid"], write_statistics=SCALARS, compression="zstd",
                     compression_level=1)
# the synthetic writer's before: synth.spectra_compression = none, statistics everywhere
BEFORE_SYNTH = dict(use_dictionary=[], write_statistics=True, compression="none")
FLOATS = ["flux.list.element", "ivar.list.element"]   # leaf paths: a bare "flux" is silently ignored
MASK = "pixmask.list.element"


@dataclasses.dataclass(frozen=True)
class Layout:
    """One candidate: ParquetWriter options, pixmask element type, spectra per row group."""

    options: dict
    pixmask: pa.DataType = pa.int32()
    row_group: int = 2000


def _bss(level: int, **extra) -> dict:
    return dict(use_dictionary=False, write_statistics=SCALARS, compression="zstd",
                compression_level=level, use_byte_stream_split=FLOATS) | extra


def candidates(chosen: dict) -> dict[str, Layout]:
    """The layouts measured on the sample, by name (``chosen`` = the ingest writer's options)."""
    return {
        "before_ingest": Layout(BEFORE_INGEST),
        "before_synth": Layout(BEFORE_SYNTH),
        "zstd1_bss": Layout(_bss(1)),
        "zstd3_bss": Layout(_bss(3)),
        "zstd6_bss": Layout(_bss(6)),
        "zstd1_bss_dict_obsid": Layout(_bss(1, use_dictionary=["obsid"])),
        "zstd1_bss_dict_mask": Layout(_bss(1, use_dictionary=[MASK])),
        "zstd1_bss_mask_uint8": Layout(_bss(1), pa.uint8()),
        "chosen": Layout(chosen),
    }


def synthetic_spectra(n_spectra: int, seed: int = 0) -> list:
    """``n_spectra`` observed synthetic spectra as ingest ``Spectrum`` objects (header: obsid)."""
    from ..ingest.lamost_fits import Spectrum
    from ..synth.observe import Observer, make_visits
    from ..synth.presets import config_for
    from ..synth.spectra_model import DLOGLAM, LOGLAM0
    from ..synth.stars import make_stars, stream

    cfg = config_for("tiny", seed=seed, sets=[f"synth.n_stars={max(n_spectra // 1.4, 10):.0f}"])
    stars = make_stars(cfg.synth)
    visits = make_visits(cfg.synth, stars)
    idx = np.arange(min(n_spectra, visits["obsid"].size))
    res = Observer(cfg.synth).observe(stars, visits, idx, stream(cfg.synth, "spectra", 0))
    return [Spectrum({"obsid": int(visits["obsid"][i])}, LOGLAM0, DLOGLAM, res["flux"][r], res["ivar"][r],
                     res["pixmask"][r]) for r, i in enumerate(idx)]


def real_spectra(root: Path = REAL_LAMOST) -> list:
    """Every readable LAMOST LRS file under ``root`` (empty list when it is absent)."""
    from ..config import DEFAULT
    from ..ingest.lamost_fits import BadSpectrum, file_bytes, read_spectrum

    out = []
    for path in sorted(root.rglob("*.fit*")) if root.is_dir() else []:
        try:
            out.append(read_spectrum(path, file_bytes(path)[0], DEFAULT.ingest.loglinear_rtol,
                                     DEFAULT.ingest.min_pixels))
        except BadSpectrum:
            continue   # the MRS file and the like: refused by ingest too
    return out


def spectra_arrow(specs: list, pixmask: pa.DataType = pa.int32()) -> pa.Table:
    """The landing spectra table of ``specs``; a narrower ``pixmask`` is a safe (checked) cast."""
    from ..ingest.lamost import spectra_table

    table = spectra_table(specs)
    if pixmask != table.schema.field("pixmask").type.value_type:
        i = table.schema.get_field_index("pixmask")
        table = table.set_column(i, "pixmask", pc.cast(table.column("pixmask"), pa.list_(pixmask)))
    return table


def write(table: pa.Table, path: Path, layout: Layout) -> None:
    """Write like the ingest sink does: one ParquetWriter, row groups of ``layout.row_group``."""
    with pq.ParquetWriter(path, table.schema, **layout.options) as writer:
        writer.write_table(table, row_group_size=layout.row_group)


def column_encodings(path: Path) -> dict[str, set[str]]:
    """Parquet encodings used by each leaf column, over all row groups."""
    md = pq.ParquetFile(path).metadata
    out: dict[str, set[str]] = {}
    for g in range(md.num_row_groups):
        for c in range(md.num_columns):
            col = md.row_group(g).column(c)
            out.setdefault(col.path_in_schema, set()).update(col.encodings)
    return out


def _bits(column: pa.ChunkedArray) -> tuple[pa.ChunkedArray, pa.ChunkedArray]:
    """(list lengths, values) of a list column, float values reinterpreted as int32 (no copy)."""
    values = [chunk.flatten() for chunk in column.chunks]
    values = [v.view(pa.int32()) if pa.types.is_floating(v.type) else v for v in values]
    return pc.list_value_length(column), pa.chunked_array(values, values[0].type if values else None)


def assert_bit_identical(got: pa.Table, want: pa.Table, columns: tuple[str, ...]) -> None:
    """Raise when a list column read back differs in any bit (floats compared as int32, so
    -0.0 differs from 0.0), its spectrum boundaries included; chunking may differ."""
    for name in columns:
        (g_len, g_val), (w_len, w_val) = _bits(got.column(name)), _bits(want.column(name))
        if not (g_len.equals(w_len) and g_val.equals(w_val)):
            raise AssertionError(f"{name}: values read back differ from those written")


def read_pyarrow(path: Path, batch_rows: int = READ_BATCH) -> Iterator[pa.RecordBatch]:
    """flux, ivar in batches of ``batch_rows`` spectra (streamed, as the stages read)."""
    return pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=["flux", "ivar"])


def read_duckdb(path: Path, con, batch_rows: int = READ_BATCH) -> Iterator[pa.RecordBatch]:
    """The same through DuckDB ``read_parquet`` (Arrow record batches)."""
    return iter(con.sql("select flux, ivar from read_parquet($1)", params=[str(path)])
                .to_arrow_reader(batch_rows))


def consume(batches: Iterable[pa.RecordBatch], want: pa.Table | None = None) -> int:
    """Turn each batch's flux and ivar into flat numpy arrays (zero copy); with ``want``,
    assert them bit-identical to its rows, in order. Returns the number of spectra read."""
    n = 0
    for batch in batches:
        [batch.column(c).flatten().to_numpy() for c in ("flux", "ivar")]
        if want is not None:
            assert_bit_identical(pa.Table.from_batches([batch]), want.slice(n, batch.num_rows),
                                 ("flux", "ivar"))
        n += batch.num_rows
    if want is not None and n != want.num_rows:
        raise AssertionError(f"read {n} spectra back, wrote {want.num_rows}")
    return n


def column_bytes(path: Path) -> dict[str, int]:
    """Compressed bytes of each top-level column, over all row groups."""
    md = pq.ParquetFile(path).metadata
    out: dict[str, int] = {}
    for g in range(md.num_row_groups):
        for c in range(md.num_columns):
            col = md.row_group(g).column(c)
            top = col.path_in_schema.split(".")[0]
            out[top] = out.get(top, 0) + col.total_compressed_size
    return out


def _timed(fn):
    """(wall s, CPU s of all this process's threads, result) of ``fn()``."""
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - t0, time.process_time() - c0, result


def measure(tables: dict, layouts: dict[str, Layout], folder: Path, repeats: int = 2,
            timed: bool = True, rss: bool = False) -> dict[str, dict]:
    """Per layout: bytes per spectrum and (``timed``) write MB/s and read spectra/s.

    Every layout's file is read back through both readers and checked bit-identical (the
    first round of reads; pixmask through pyarrow). The reads (flux + ivar to numpy) are
    timed round-robin over the layouts, ``repeats`` rounds, best kept, so a machine that
    gets busier during the run slows every layout alike. Spectra per CPU-second (all
    threads of this process) are reported beside spectra per wall-second: on a shared
    machine they are the steadier figure. ``rss``: also the peak RSS the DuckDB reader adds
    (``read_rss_mb``).
    """
    import duckdb

    out: dict[str, dict] = {}
    paths: dict[str, Path] = {}
    con = duckdb.connect()
    readers = {"pyarrow": read_pyarrow, "duckdb": lambda path: read_duckdb(path, con)}
    try:
        for name, layout in layouts.items():
            table = tables[layout.pixmask]
            paths[name] = path = folder / f"{name}.parquet"
            t_write, c_write, _ = _timed(lambda: write(table, path, layout))
            assert_bit_identical(pq.read_table(path, columns=["pixmask"]), table, ("pixmask",))
            out[name] = {"bytes_per_spectrum": round(path.stat().st_size / table.num_rows)}
            if timed:
                raw = 4 * sum(pc.sum(pc.list_value_length(table.column(c))).as_py()
                              for c in ("flux", "ivar", "pixmask"))
                out[name]["write_raw_mb_per_s"] = round(raw / t_write / 1e6, 1)
                out[name]["write_raw_mb_per_cpu_s"] = round(raw / max(c_write, 1e-6) / 1e6, 1)
        best: dict[tuple[str, str], tuple[float, float]] = {}
        for round_ in range(repeats if timed else 1):
            for name, path in paths.items():
                for how, read in readers.items():
                    want = tables[layouts[name].pixmask] if round_ == 0 else None
                    wall, cpu, _ = _timed(lambda: consume(read(path), want))
                    prev = best.get((name, how), (wall, cpu))
                    best[name, how] = (min(prev[0], wall), min(prev[1], cpu))
        for (name, how), (wall, cpu) in best.items() if timed else ():
            n = tables[layouts[name].pixmask].num_rows
            out[name][f"read_{how}_spectra_per_s"] = round(n / wall)
            out[name][f"read_{how}_spectra_per_cpu_s"] = round(n / max(cpu, 1e-6))
            if rss and how == "duckdb":     # pyarrow's batches hold ~500 MB whatever the group size
                out[name][f"read_{how}_rss_added_mb"] = read_rss_mb(how, paths[name])
    finally:
        con.close()
        for path in paths.values():
            path.unlink(missing_ok=True)
    return out


# VmHWM, not ru_maxrss: Linux carries a parent's ru_maxrss over fork + exec into the child
_RSS_PROBE = """
import re, sys, duckdb
from pathlib import Path
from mgold.pipeline.bench.storage import consume, read_duckdb, read_pyarrow
def peak_kb():
    return int(re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1))
con = duckdb.connect()
path = Path(sys.argv[2])
before = peak_kb()
consume(read_pyarrow(path) if sys.argv[1] == "pyarrow" else read_duckdb(path, con))
print((peak_kb() - before) / 1024)
"""


def read_rss_mb(how: str, path: Path) -> float:
    """MB of peak RSS that streaming ``path`` through reader ``how`` adds, in a fresh process
    (a process's peak only grows, so each reading needs its own); NaN without /proc."""
    import subprocess
    import sys

    if not Path("/proc/self/status").is_file():
        return float("nan")
    out = subprocess.run([sys.executable, "-c", _RSS_PROBE, how, str(path)], capture_output=True,
                         text=True, check=True, timeout=300)
    return round(float(out.stdout.split()[-1]))


def tiled(specs: list, times: int) -> list:
    """``specs`` repeated ``times`` with new obsids (a copy never shares a Parquet page with
    its original, pages being ~1 MB: sizes stay those of distinct spectra)."""
    from ..ingest.lamost_fits import Spectrum

    top = max(s.header["obsid"] for s in specs) + 1
    return [Spectrum({"obsid": s.header["obsid"] + k * top}, s.loglam0, s.dloglam, s.flux, s.ivar, s.pixmask)
            for k in range(times) for s in specs]


@benchmark("storage")
def bench_storage(n_spectra: int = 2000, repeats: int = 2, seed: int = 0,
                  real_root: Path = REAL_LAMOST) -> dict:
    """Bytes/spectrum, write MB/s, read spectra/s of each candidate layout; chosen vs before.

    The candidates are written in row groups of ``n_spectra // 4`` (both cores read, as in a
    20,000-spectrum part); the row-group sizes 1k/2k/4k are compared with the chosen options
    on the synthetic sample tiled to 8,000 spectra: bytes, speed (reads timed once) and the
    peak RSS a streaming reader adds, which is what the group size mostly changes.
    """
    from ..config import DEFAULT
    from ..ingest.lamost import PARQUET_OPTIONS, SPECTRA_SCHEMA

    group = max(n_spectra // 4, 1)
    layouts = {k: dataclasses.replace(v, row_group=group) for k, v in candidates(PARQUET_OPTIONS).items()}
    samples = {"synth": synthetic_spectra(n_spectra, seed), "real": real_spectra(real_root)}
    mask_type = SPECTRA_SCHEMA.field("pixmask").type.value_type
    figures: dict = {"n_synthetic_spectra": len(samples["synth"]), "n_real_spectra": len(samples["real"]),
                     "chosen": ", ".join(f"{k}={v}" for k, v in PARQUET_OPTIONS.items())
                     + f", pixmask={mask_type}, row_group={DEFAULT.ingest.spectra_per_row_group}"}
    with tempfile.TemporaryDirectory() as tmp:
        for sample, specs in samples.items():
            if not specs:
                continue
            tables = {t: spectra_arrow(specs, t) for t in {lay.pixmask for lay in layouts.values()}}
            res = measure(tables, layouts, Path(tmp), repeats, timed=sample == "synth")
            for name, figs in res.items():
                figures.update({f"{sample}_{name}_{k}": v for k, v in figs.items()})
            path = Path(tmp) / "chosen.parquet"
            write(tables[mask_type], path, layouts["chosen"])
            for col, n_bytes in column_bytes(path).items():
                figures[f"{sample}_chosen_{col}_bytes_per_spectrum"] = round(n_bytes / len(specs))
            before, after = (res[c]["bytes_per_spectrum"] for c in ("before_ingest", "chosen"))
            figures[f"{sample}_ratio_bytes_chosen_over_before"] = round(after / before, 3)
            figures[f"{sample}_before_gb_per_million_spectra"] = round(before / 1e3, 1)
            figures[f"{sample}_chosen_gb_per_million_spectra"] = round(after / 1e3, 1)
        big = {mask_type: spectra_arrow(tiled(samples["synth"], 4), mask_type)}
        by_group = {f"rg{g}": Layout(PARQUET_OPTIONS, mask_type, g) for g in (1000, 2000, 4000)}
        for name, figs in measure(big, by_group, Path(tmp), repeats=1, rss=True).items():
            figures.update({f"synth_x4_chosen_{name}_{k}": v for k, v in figs.items()})
    reads = [f"read_{how}_spectra_per_{per}" for how in ("pyarrow", "duckdb") for per in ("s", "cpu_s")]
    for key in ("write_raw_mb_per_s", "write_raw_mb_per_cpu_s", *reads):
        figures[f"synth_ratio_{key}_chosen_over_before"] = round(
            figures[f"synth_chosen_{key}"] / figures[f"synth_before_ingest_{key}"], 2)
    return figures
