"""`mgold build` bookkeeping that needs no universe: freshness of synthetic inputs, stage timing."""

from __future__ import annotations

import json

from mgold.pipeline.build import _manifest_fresh, preset_config
from mgold.pipeline.synth.make import generator_version


def _manifest(path, cfg, fmt="parquet", generator=None):
    path.write_text(json.dumps({
        "format": fmt, "generator": generator or generator_version(),
        "config": {k: v for k, v in cfg.flat().items() if k.startswith("synth.")}}))
    return path


def test_inputs_are_fresh_only_for_the_same_config_format_and_generator(tmp_path):
    cfg = preset_config("tiny")
    m = _manifest(tmp_path / "manifest.json", cfg)
    assert _manifest_fresh(m, cfg, "parquet")
    assert not _manifest_fresh(m, cfg, "fits")
    assert not _manifest_fresh(m, cfg.with_overrides({"synth.aspcap.dwarf.teff_k": 1.0}), "parquet")
    assert not _manifest_fresh(_manifest(m, cfg, generator="0" * 64), cfg, "parquet")
    assert not _manifest_fresh(tmp_path / "absent.json", cfg, "parquet")


def test_generator_version_is_stable_and_hex():
    v = generator_version()
    assert v == generator_version() and len(v) == 64 and int(v, 16) >= 0


def test_a_warehouse_of_real_files_is_never_wiped_for_a_universe(tmp_path):
    import pytest

    from mgold.pipeline.build import BuildError, _forget_other_universe
    from mgold.pipeline.warehouse import connect

    wh = tmp_path / "w.duckdb"
    con = connect(wh)
    con.execute("create table landing.gaia as select 1 as source_id")
    con.execute("insert into meta.ingested_files values ('abc', '/data/real/spec-1.fits', 'lamost', 'r', 1, now())")
    con.close()
    with pytest.raises(BuildError, match="not a synthetic universe"):
        _forget_other_universe(wh, "0" * 64, tmp_path / "w_files" / "inputs")
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
