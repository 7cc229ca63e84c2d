"""Spectra Parquet layout: the chosen options keep every float32 bit, and both writers use them.

The layout (``lamost.PARQUET_OPTIONS`` / ``SPECTRA_SCHEMA``) was chosen by ``mgold bench
storage``; these tests pin what must not change with it: values read back bit-identical
through pyarrow and DuckDB (float32 extremes, -0.0, subnormals, ivar = 0 runs, int32 mask
bits), BYTE_STREAM_SPLIT really applied to flux/ivar, and the ingest writer and the synthetic
writer producing the same column encodings.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mgold.pipeline.bench import discover
from mgold.pipeline.bench.storage import (BEFORE_INGEST, Layout, assert_bit_identical, column_encodings,
                                          consume, read_duckdb, read_pyarrow, real_spectra, spectra_arrow,
                                          write)
from mgold.pipeline.config import DEFAULT
from mgold.pipeline.datafiles import spectra_dir
from mgold.pipeline.ingest.lamost import PARQUET_OPTIONS, SPECTRA_SCHEMA, ingest_lamost
from mgold.pipeline.warehouse import open_warehouse
from mgold.pipeline.ingest.lamost_fits import Spectrum

F32 = np.finfo(np.float32)
EXTREMES = np.array([F32.max, -F32.max, F32.tiny, -F32.tiny, F32.smallest_subnormal, -0.0, 0.0, 1.0,
                     F32.eps, np.float32(np.pi), 1e-30, -1e30], np.float32)
MASK_BITS = np.array([0, 1, 4, 64, 1 << 23, np.iinfo(np.int32).max, np.iinfo(np.int32).min], np.int32)


def edge_spectra(seed: int = 0) -> list[Spectrum]:
    """Spectra of several lengths holding float32 extremes, ivar = 0 runs and mask bits."""
    rng = np.random.default_rng(seed)
    out = []
    for i, n in enumerate((3909, 3751, 1, 3899, 12)):
        flux = (rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 3)).astype(np.float32)
        flux[:min(n, EXTREMES.size)] = EXTREMES[:n]
        ivar = rng.gamma(2.0, 1.0, n).astype(np.float32)
        ivar[n // 3:n // 3 + 200] = 0.0                 # a masked run
        ivar[-(min(n, 40)):] = 0.0                      # missing red end
        pixmask = np.where(ivar == 0, 32, 0).astype(np.int32)
        pixmask[:min(n, MASK_BITS.size)] = MASK_BITS[:n]
        out.append(Spectrum({"obsid": 10 + i}, 3.5682 + 1e-5 * i, 1e-4, flux, ivar, pixmask))
    return out


def test_chosen_layout_reads_back_every_bit_through_pyarrow_and_duckdb(tmp_path):
    table = spectra_arrow(edge_spectra())
    path = tmp_path / "s.parquet"
    write(table, path, Layout(PARQUET_OPTIONS, row_group=2))   # 3 row groups
    assert pq.read_schema(path).remove_metadata() == SPECTRA_SCHEMA.remove_metadata()
    back = pq.read_table(path)
    assert_bit_identical(back, table, ("flux", "ivar", "pixmask"))
    assert consume(read_duckdb(path, duckdb.connect(), batch_rows=2), table) == 5
    assert consume(read_pyarrow(path, batch_rows=3), table) == 5
    assert back.column("obsid").to_pylist() == [10, 11, 12, 13, 14]
    assert back.column("loglam0").to_pylist() == table.column("loglam0").to_pylist()
    con = duckdb.connect()
    mask, neg_zero = con.execute("select pixmask, flux[6] from read_parquet(?) where obsid = 10",
                                 [str(path)]).fetchone()
    assert mask[:MASK_BITS.size] == MASK_BITS.tolist()
    assert np.signbit(np.float32(neg_zero))


def test_assert_bit_identical_catches_one_flipped_bit_and_a_moved_boundary(tmp_path):
    specs = edge_spectra()
    table = spectra_arrow(specs)
    specs[3].flux = specs[3].flux.copy()
    specs[3].flux[100] = np.nextafter(specs[3].flux[100], np.float32(np.inf))
    with pytest.raises(AssertionError, match="flux"):
        assert_bit_identical(spectra_arrow(specs), table, ("flux",))
    ivar = table.column("ivar").combine_chunks()
    offsets = np.asarray(ivar.offsets).copy()
    offsets[1] -= 1                                      # same values, one pixel moved to spectrum 2
    moved = table.set_column(4, "ivar", pa.ListArray.from_arrays(pa.array(offsets), ivar.values))
    with pytest.raises(AssertionError, match="ivar"):
        assert_bit_identical(moved, table, ("ivar",))


def test_float_lists_are_byte_stream_split_and_a_bare_column_name_would_not_be(tmp_path):
    table = spectra_arrow(edge_spectra())
    write(table, tmp_path / "chosen.parquet", Layout(PARQUET_OPTIONS))
    enc = column_encodings(tmp_path / "chosen.parquet")
    assert "BYTE_STREAM_SPLIT" in enc["flux.list.element"] and "BYTE_STREAM_SPLIT" in enc["ivar.list.element"]
    assert "BYTE_STREAM_SPLIT" not in enc["pixmask.list.element"]
    # the pitfall the leaf paths avoid: pyarrow silently ignores a top-level list name
    write(table, tmp_path / "bare.parquet", Layout({**PARQUET_OPTIONS, "use_byte_stream_split": ["flux"]}))
    assert "BYTE_STREAM_SPLIT" not in column_encodings(tmp_path / "bare.parquet")["flux.list.element"]


def _signature(path: Path, columns: tuple[str, ...]) -> dict:
    """Per leaf column of ``columns``: physical/logical type, encodings, codec, statistics kept."""
    md = pq.ParquetFile(path).metadata
    out = {}
    for g in range(md.num_row_groups):
        for c in range(md.num_columns):
            col = md.row_group(g).column(c)
            if col.path_in_schema.split(".")[0] in columns:
                sig = (col.physical_type, str(md.schema.column(c).logical_type), tuple(sorted(col.encodings)),
                       col.compression, col.is_stats_set)
                assert out.setdefault(col.path_in_schema, sig) == sig
    return out


def test_ingest_parts_and_synthetic_files_share_the_chosen_layout(tmp_path):
    from mgold.pipeline.synth.make import write_spectra
    from mgold.pipeline.synth.observe import make_visits
    from mgold.pipeline.synth.presets import config_for
    from mgold.pipeline.synth.stars import make_stars

    cfg = config_for("tiny", seed=3, sets=["synth.n_stars=40"])
    assert cfg.synth.spectra_compression == PARQUET_OPTIONS["compression"]
    stars = make_stars(cfg.synth)
    files = write_spectra(cfg, tmp_path / "u", "parquet", stars, make_visits(cfg.synth, stars))
    (rel,) = [f["path"] for f in files]
    synth_file = tmp_path / "u" / rel
    with open_warehouse(tmp_path / "w.duckdb", command="test") as con:
        report = ingest_lamost(con, [synth_file], DEFAULT, workers=1)
    assert report.files_loaded == 1
    (part,) = spectra_dir(tmp_path / "w.duckdb").glob("*.parquet")

    cols = tuple(SPECTRA_SCHEMA.names)
    landing, synthetic = _signature(part, cols), _signature(synth_file, cols)
    assert landing == synthetic
    assert landing["flux.list.element"][2] == ("BYTE_STREAM_SPLIT", "RLE")
    assert landing["flux.list.element"][3] == "ZSTD" and not landing["flux.list.element"][4]
    assert landing["obsid"][4]                          # statistics where filters use them
    synth_schema = pq.read_schema(synth_file)
    assert [synth_schema.field(n).type for n in cols] == list(SPECTRA_SCHEMA.types)
    assert_bit_identical(pq.read_table(part), pq.read_table(synth_file), ("flux", "ivar", "pixmask"))


@pytest.mark.real
def test_real_lamost_spectra_read_back_identical_and_smaller_than_before(real_data, tmp_path):
    specs = real_spectra(real_data / "lamost")
    assert len(specs) > 250
    table = spectra_arrow(specs)
    write(table, tmp_path / "after.parquet", Layout(PARQUET_OPTIONS))
    write(table, tmp_path / "before.parquet", Layout(BEFORE_INGEST))
    assert consume(read_pyarrow(tmp_path / "after.parquet"), table) == len(specs)
    assert consume(read_duckdb(tmp_path / "after.parquet", duckdb.connect()), table) == len(specs)
    assert_bit_identical(pq.read_table(tmp_path / "after.parquet"), table, ("pixmask",))
    ratio = (tmp_path / "after.parquet").stat().st_size / (tmp_path / "before.parquet").stat().st_size
    assert ratio < 0.9                                   # measured 0.85


def test_storage_benchmark_reports_sizes_and_read_rates_of_each_layout(tmp_path):
    res = discover()["storage"](n_spectra=40, repeats=1, real_root=tmp_path / "absent")
    assert res["n_synthetic_spectra"] == 40 and res["n_real_spectra"] == 0
    assert res["synth_ratio_bytes_chosen_over_before"] < 0.9
    assert res["synth_before_synth_bytes_per_spectrum"] > res["synth_before_ingest_bytes_per_spectrum"]
    for name in ("before_ingest", "zstd3_bss", "zstd1_bss_mask_uint8", "chosen"):
        assert res[f"synth_{name}_read_duckdb_spectra_per_s"] > 0
        assert res[f"synth_{name}_write_raw_mb_per_s"] > 0
    assert {f"synth_x4_chosen_rg{g}_bytes_per_spectrum" for g in (1000, 2000, 4000)} <= set(res)
    assert all(res[f"synth_x4_chosen_rg{g}_read_duckdb_rss_added_mb"] >= 0 for g in (1000, 2000, 4000))
    assert not any(k.startswith("real_") for k in res)
