"""What lets the paper / dr11 presets fit one machine, checked on a 300-star universe: each synthetic
spectrum stored once (adopted by hard link), the disk guard before synthesis, --no-keep-inputs."""

from __future__ import annotations

import os
import shutil
from collections import namedtuple
from pathlib import Path

import pytest

from mgold.pipeline.build import build, preset_config
from mgold.pipeline.datafiles import files_dir
from mgold.pipeline.errors import MgoldError
from mgold.pipeline.warehouse import connect

SMALL = ["synth.n_stars=300"]


def _build(wh: Path, **kw):
    return build(wh, preset="tiny", cfg=preset_config("tiny", sets=SMALL), until="ingest",
                 echo=kw.pop("echo", lambda _m: None), **kw)


def _parts(wh: Path) -> list[Path]:
    return sorted((files_dir(wh) / "spectra").rglob("*.parquet"))


def _input_spectra(wh: Path) -> list[Path]:
    return sorted((files_dir(wh) / "inputs" / "lamost").glob("spectra-*.parquet"))


def _spectra_and_headers(wh: Path) -> tuple[int, int]:
    con = connect(wh, read_only=True)
    try:
        return con.execute("select (select count(*) from landing.lamost_spectra), "
                           "(select count(*) from landing.lamost_headers)").fetchone()
    finally:
        con.close()


def test_a_universe_in_the_landing_layout_is_stored_once(tmp_path):
    wh = tmp_path / "w.duckdb"
    _build(wh)
    parts, inputs = _parts(wh), _input_spectra(wh)
    assert inputs and len(parts) == len(inputs)
    # every part IS an input file (one inode, two names), so the spectra take their bytes once
    assert all(any(os.path.samefile(p, i) for i in inputs) for p in parts)
    n, n_headers = _spectra_and_headers(wh)
    assert n == n_headers > 0


def test_a_build_the_disk_cannot_hold_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: Usage(10**9, 10**9 - 10**6, 10**6))
    wh = tmp_path / "w.duckdb"
    with pytest.raises(MgoldError, match=r"needs ~[\d.]+ GB under .*, 0\.0 GB are free: free space"):
        _build(wh)
    assert not _input_spectra(wh)                         # refused before synthesis wrote a file


def test_no_keep_inputs_drops_the_input_names_and_the_warehouse_keeps_every_spectrum(tmp_path):
    wh = tmp_path / "w.duckdb"
    said: list[str] = []
    _build(wh, keep_inputs=False, echo=said.append)
    assert not _input_spectra(wh)
    assert any("--no-keep-inputs: removed" in s for s in said)
    n, n_headers = _spectra_and_headers(wh)
    assert n == n_headers > 0                              # the parts (hard links) kept the data
    # the next build finds the universe fresh: nothing is synthesised or ingested again
    said.clear()
    _build(wh, keep_inputs=False, echo=said.append)
    assert any(s.startswith("[synth] done") and "fresh" in s for s in said), said
    assert not _input_spectra(wh)
