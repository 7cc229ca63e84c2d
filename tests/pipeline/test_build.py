"""`mgold build` bookkeeping that needs no universe: freshness of synthetic inputs, stage timing."""

from __future__ import annotations

import json

import shutil
from pathlib import Path

from mgold.pipeline.build import _inputs_fresh, preset_config
from mgold.pipeline.synth.make import generator_version


def _manifest(folder, cfg, fmt="parquet", generator=None, files=()):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps({
        "format": fmt, "generator": generator or generator_version(), "truth": [],
        "config": {k: v for k, v in cfg.flat().items() if k.startswith("synth.")}, "files": list(files)}))
    return folder


def test_inputs_are_fresh_only_for_the_same_config_format_and_generator(tmp_path):
    cfg = preset_config("tiny")
    m = _manifest(tmp_path / "in", cfg)
    assert _inputs_fresh(m, cfg, "parquet") is None
    assert "format" in _inputs_fresh(m, cfg, "fits")
    assert "synth.aspcap.dwarf.teff_k" in _inputs_fresh(m, cfg.with_overrides({"synth.aspcap.dwarf.teff_k": 1.0}),
                                                        "parquet")
    assert "generator" in _inputs_fresh(_manifest(m, cfg, generator="0" * 64), cfg, "parquet")
    assert _inputs_fresh(tmp_path / "absent", cfg, "parquet") is not None


def test_inputs_with_a_missing_or_resized_file_are_not_fresh(tmp_path):
    cfg = preset_config("tiny")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.parquet").write_bytes(b"x" * 10)
    m = _manifest(tmp_path / "in", cfg, files=[{"kind": "gaia", "path": "a.parquet", "bytes": 10}])
    assert _inputs_fresh(m, cfg, "parquet") is None
    (m / "a.parquet").write_bytes(b"x" * 11)           # an interrupted rewrite
    assert "bytes" in _inputs_fresh(m, cfg, "parquet")
    (m / "a.parquet").unlink()
    assert "missing" in _inputs_fresh(m, cfg, "parquet")


def test_generator_version_is_stable_and_changes_with_any_generator_file(tmp_path):
    here = Path(__import__("mgold.pipeline.synth.make", fromlist=["x"]).__file__).parent
    copy = tmp_path / "synth"
    shutil.copytree(here, copy, ignore=shutil.ignore_patterns("__pycache__"))
    v = generator_version(copy)
    assert v == generator_version() == generator_version(copy) and len(v) == 64
    (copy / "stars.py").write_text((copy / "stars.py").read_text() + "\n# edited\n")
    assert generator_version(copy) != v


def test_a_warehouse_of_real_files_is_never_wiped_for_a_universe(tmp_path):
    import pytest

    from mgold.pipeline.build import _forget_other_universe
    from mgold.pipeline.errors import WarehouseError
    from mgold.pipeline.warehouse import connect

    wh = tmp_path / "w.duckdb"
    con = connect(wh)
    con.execute("create table landing.gaia as select 1 as source_id")
    con.execute("insert into meta.ingested_files values ('abc', '/data/real/spec-1.fits', 'lamost', 'r', 1, now())")
    with pytest.raises(WarehouseError, match="not a synthetic universe"):
        _forget_other_universe(con, [], "0" * 64, lambda _m: None)
    con.close()
    con = connect(wh, read_only=True)
    assert con.execute("select count(*) from landing.gaia").fetchone()[0] == 1
    con.close()


def test_rebuilding_with_another_universe_replaces_the_landing_data(tmp_path):
    """Ingest keeps the first row of a key: without the reset, a --set would be silently ignored."""
    from mgold.pipeline.build import build
    from mgold.pipeline.warehouse import connect

    wh = tmp_path / "w.duckdb"
    quiet = dict(preset="tiny", until="ingest", echo=lambda _m: None)
    build(wh, cfg=preset_config("tiny"), **quiet)
    hot = preset_config("tiny", sets=["synth.aspcap.dwarf.teff_k=400"])
    build(wh, cfg=hot, **quiet)
    con = connect(wh, read_only=True)
    try:
        assert con.execute("select count(*) from meta.ingest_errors where reason like '%duplicate%'").fetchone()[0] == 0
        injected = con.execute("select offset_value from truth.injected_offsets "
                               "where catalog = 'aspcap' and class = 'dwarf' and param = 'teff_k'").fetchone()[0]
        assert injected == 400
        # the landed ASPCAP rows are the new universe's: their dwarfs sit ~400 K above the truth
        d = con.execute("""select median(a.teff_k - s.teff_k) from landing.aspcap a
                           join truth.stars s on s.source_id = a.source_id
                           where s.class = 'dwarf' and a.teff_k > 0""").fetchone()[0]
        assert 300 < d < 500, d
        n_files = con.execute("select count(*) from meta.ingested_files").fetchone()[0]
        n_parts = len(list((tmp_path / "w_files" / "spectra" / "lamost").glob("*.parquet")))
        assert n_parts >= 1 and n_files == con.execute(
            "select count(distinct file) from meta.ingested_files").fetchone()[0]
    finally:
        con.close()
