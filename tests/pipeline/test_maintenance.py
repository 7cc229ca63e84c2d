"""`mgold doctor`, `mgold vacuum`, `mgold catalog`: a healthy warehouse says so; each injected fault is
named with the command that fixes it, and that command fixes it; compaction loses nothing, even killed."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from mgold.pipeline.bench.ingest import write_dr8_fits
from mgold.pipeline.cli import app
from mgold.pipeline.ingest.lamost import SPECTRA_SCHEMA
from mgold.pipeline.runner.ledger import Ledger

N_INGESTS, PER_INGEST = 6, 2          # six small ingests of two spectra: six small parts


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def mgold(command: str, w: Path):
    """Run a command line as doctor prints it (``mgold ... -w W``) through the CLI."""
    args = shlex.split(command)
    assert args[0] == "mgold" and str(w) in args, command
    return invoke(*args[1:])


def problems(res) -> list[str]:
    assert "Traceback" not in res.output, res.output
    return [line for line in res.stdout.splitlines() if "; fix: " in line]


def fixes(lines: list[str]) -> list[str]:
    """The commands of the problem lines, split where a line says 'then'."""
    out = []
    for line in lines:
        for cmd in re.split(r", then |; then ", line.split("; fix: ", 1)[1]):
            cmd = cmd.split(" (")[0]
            if cmd not in out:
                out.append(cmd)
    return out


def assert_healthy(w: Path) -> None:
    res = invoke("doctor", "-w", w)
    assert res.exit_code == 0 and "healthy" in res.stdout, res.output


def read(w: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection that resolves the spectra view's relative paths, as mgold's does."""
    con = duckdb.connect(str(w), read_only=True)
    con.execute(f"set file_search_path = '{w.parent}'")
    return con


def spectra(w: Path) -> list[tuple]:
    """(obsid, row hash) of every spectrum the warehouse reads, in obsid order."""
    con = read(w)
    try:
        return con.execute("select obsid, hash(loglam0, dloglam, flux, ivar, pixmask) from landing.lamost_spectra "
                           "order by obsid").fetchall()
    finally:
        con.close()


def registered(w: Path) -> tuple[set[str], set[str]]:
    """(files meta.data_files lists, files on disk under the spectra folder)."""
    con = duckdb.connect(str(w), read_only=True)
    listed = {r[0] for r in con.execute("select path from meta.data_files").fetchall()}
    con.close()
    on_disk = {p.relative_to(w.parent).as_posix() for p in (w.parent / "w_files" / "spectra").rglob("*") if p.is_file()}
    return listed, on_disk


# --------------------------------------------------------------------------- a small warehouse of real-layout files

@pytest.fixture(scope="module")
def small_source(tmp_path_factory) -> Path:
    """A warehouse of N_INGESTS ingests of PER_INGEST DR8 FITS files each (one small part per ingest)."""
    root = tmp_path_factory.mktemp("small")
    rng = np.random.default_rng(7)
    w = root / "w.duckdb"
    for k in range(N_INGESTS):
        folder = root / "in" / f"batch{k}"
        folder.mkdir(parents=True)
        for i in range(PER_INGEST):
            write_dr8_fits(folder / f"spec-{k}-{i}.fits", 1000 + k * PER_INGEST + i, rng)
        assert invoke("ingest", "lamost", folder, "-w", w).exit_code == 0
    return w


@pytest.fixture()
def small(small_source, tmp_path) -> Path:
    """A private copy of ``small_source`` (same input files)."""
    w = tmp_path / "w.duckdb"
    shutil.copy(small_source, w)
    shutil.copytree(small_source.parent / "w_files", tmp_path / "w_files")
    return w


def test_doctor_says_healthy_and_vacuum_compacts_small_parts_into_full_ones(small):
    assert_healthy(small)
    before = spectra(small)
    con = read(small)
    fingerprint = Ledger(con).source_fingerprint("landing.lamost_spectra")
    con.close()
    res = invoke("vacuum", "-w", small, "--set", "ingest.spectra_per_file=5", "--set", "ingest.spectra_per_row_group=2")
    assert res.exit_code == 0, res.output
    assert "compacted 6 part(s) into 3 (12 spectra)" in res.stdout
    assert spectra(small) == before                     # every spectrum, once, bit for bit
    listed, on_disk = registered(small)
    assert listed == on_disk and len(listed) == 3
    parts = sorted(small.parent.glob("w_files/spectra/lamost/*.parquet"))
    assert [pq.ParquetFile(p).metadata.num_rows for p in parts] == [5, 5, 2]
    meta = pq.ParquetFile(parts[0]).metadata
    assert pq.read_schema(parts[0]).equals(SPECTRA_SCHEMA) and meta.num_row_groups == 3    # 2 + 2 + 1
    flux = meta.row_group(0).column(3)
    assert flux.compression == "ZSTD" and "BYTE_STREAM_SPLIT" in flux.encodings        # ingest's options
    con = read(small)
    assert Ledger(con).source_fingerprint("landing.lamost_spectra") == fingerprint     # no model goes stale
    con.close()
    assert_healthy(small)
    assert "nothing to compact" in invoke("vacuum", "-w", small, "--set", "ingest.spectra_per_file=5").stdout


def test_doctor_names_a_deleted_parquet_file_and_its_fix_lands_the_spectra_again(small):
    before = spectra(small)
    part = sorted(small.parent.glob("w_files/spectra/lamost/*.parquet"))[2]
    part.unlink()
    res = invoke("doctor", "-w", small)
    lines = problems(res)
    assert res.exit_code == 1 and len(lines) == 1, res.output
    assert part.name in lines[0] and "missing" in lines[0] and f"{PER_INGEST} spectra" in lines[0]
    cmds = fixes(lines)
    assert cmds[0] == f"mgold vacuum --forget-missing -w {small}" and cmds[1].startswith("mgold ingest lamost")
    for cmd in cmds:
        res = mgold(cmd, small)
        assert res.exit_code == 0, (cmd, res.output)
    assert sorted(spectra(small)) == sorted(before)
    assert_healthy(small)


@pytest.mark.parametrize("how", ["resized", "same size"])
def test_doctor_names_a_rewritten_file(small, how):
    part = sorted(small.parent.glob("w_files/spectra/lamost/*.parquet"))[0]
    data = bytearray(part.read_bytes())
    if how == "resized":
        data += b"x"
    else:
        data[len(data) // 2] ^= 0xFF
    tmp = part.with_suffix(".new")
    tmp.write_bytes(bytes(data))
    os.replace(tmp, part)
    res = invoke("doctor", "-w", small)
    lines = problems(res)
    assert res.exit_code == 1 and len(lines) == 1 and part.name in lines[0] and "rewritten" in lines[0], res.output
    assert ("sha256" in lines[0]) == (how == "same size")
    # sizes alone catch the resized file only
    assert invoke("doctor", "-w", small, "--no-checksums").exit_code == (1 if how == "resized" else 0)


def test_doctor_names_orphans_stuck_runs_and_leftover_tables_and_vacuum_clears_them(small):
    stray = small.parent / "w_files" / "spectra" / "lamost" / "part-killed-00000.parquet"
    stray.write_bytes(b"half a file")
    con = duckdb.connect(str(small))
    con.execute("insert into meta.runs (run_id, command, started_at, status, pid, host) "
                "values ('dead', 'mgold build', now(), 'running', 999999, 'elsewhere')")
    con.execute("create table stg_gaia__tmp_20260101T000000_abc as select 1 as x")
    con.execute("create table scratch as select 1 as x")
    con.close()
    lines = problems(invoke("doctor", "-w", small))
    assert len(lines) == 4, lines
    got = dict(line.split(": ", 1) for line in lines)
    assert "not registered" in got[stray.relative_to(small.parent).as_posix()]
    assert "killed" in got["run dead"] and "PID 999999" in got["run dead"]
    assert "interrupted build" in got["stg_gaia__tmp_20260101T000000_abc"]
    assert "drop table" in got["scratch"]
    res = invoke("vacuum", "-w", small)
    assert res.exit_code == 0 and "orphaned files removed: 1" in res.stdout, res.output
    assert "stg_gaia__tmp_20260101T000000_abc" in res.stdout and "marked aborted: 1" in res.stdout
    assert not stray.exists()
    assert [line.split(": ", 1)[0] for line in problems(invoke("doctor", "-w", small))] == ["scratch"]


# --------------------------------------------------------------------------- a vacuum killed at any moment

KILLER = """
import os, signal, sys
from mgold.pipeline.config import DEFAULT
from mgold.pipeline.vacuum import vacuum
from mgold.pipeline.warehouse import open_warehouse

point = sys.argv[2]
def on_step(what):
    print(what, flush=True)
    if what.startswith(point):
        os.kill(os.getpid(), signal.SIGKILL)

cfg = DEFAULT.with_overrides(["ingest.spectra_per_file=5"])
with open_warehouse(sys.argv[1], command="mgold vacuum") as con:
    vacuum(con, cfg, on_step=on_step)
print("finished", flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("point", ["wrote part-", "written", "registered", "committed", "deleted"])
def test_a_vacuum_killed_at_any_moment_loses_no_spectrum(small, point):
    before = spectra(small)
    p = subprocess.run([sys.executable, "-c", KILLER, str(small), point], capture_output=True, text=True)
    assert p.returncode == -9 and "finished" not in p.stdout, p.stdout + p.stderr
    assert spectra(small) == before                      # read right after the kill: each spectrum once
    listed, on_disk = registered(small)
    assert listed <= on_disk                             # nothing registered is missing; orphans may lie there
    res = invoke("vacuum", "-w", small, "--set", "ingest.spectra_per_file=5")   # the next writer
    assert res.exit_code == 0, res.output
    assert spectra(small) == before
    listed, on_disk = registered(small)
    assert listed == on_disk and len(listed) == 3
    assert_healthy(small)


# --------------------------------------------------------------------------- faults in a built tiny warehouse

@pytest.fixture()
def tiny_copy(tiny_build, tmp_path) -> Path:
    """A private copy of the session's tiny build: the DuckDB file copied, its Parquet files hard-linked
    (a test replaces or deletes them, never writes into them)."""
    src = Path(tiny_build.warehouse)
    w = tmp_path / src.name
    shutil.copy(src, w)
    files = src.with_name(src.stem + "_files")
    shutil.copytree(files / "spectra", w.with_name(w.stem + "_files") / "spectra", copy_function=os.link)
    return w


@pytest.mark.slow
def test_doctor_says_a_tiny_build_is_healthy(tiny_build):
    assert_healthy(tiny_build.warehouse)


@pytest.mark.slow
def test_doctor_names_a_dropped_table_and_an_edited_ledger_and_their_fixes_work(tiny_copy):
    con = duckdb.connect(str(tiny_copy))
    con.execute("drop table lbl_transfer")
    con.execute("update meta.model_runs set row_count = row_count + 1 where model = 'sel_cmd_fit' and status = 'built'")
    con.execute("update meta.model_runs set status = 'done' where model = 'lbl_offsets' and status = 'built'")
    con.close()
    lines = problems(invoke("doctor", "-w", tiny_copy))
    got = dict(line.split(": ", 1) for line in lines)
    assert set(got) == {"lbl_transfer", "sel_cmd_fit", "lbl_offsets"}, lines
    assert "relation is missing" in got["lbl_transfer"]
    assert "the ledger recorded" in got["sel_cmd_fit"]
    assert "'done'" in got["lbl_offsets"] and "edited" in got["lbl_offsets"]
    for cmd in fixes(lines):
        assert mgold(cmd, tiny_copy).exit_code == 0, cmd
    assert_healthy(tiny_copy)


@pytest.mark.slow
def test_doctor_names_a_deleted_spectra_file_of_a_universe_with_the_build_that_lands_it(tiny_copy):
    part = next(tiny_copy.parent.glob("*_files/spectra/lamost/*.parquet"))
    part.unlink()
    lines = problems(invoke("doctor", "-w", tiny_copy))
    assert len(lines) == 1 and part.name in lines[0] and "missing" in lines[0]
    assert fixes(lines)[0] == f"mgold vacuum --forget-missing -w {tiny_copy}"
    assert fixes(lines)[1].startswith("mgold build --inputs ")


# --------------------------------------------------------------------------- catalog

def test_catalog_lists_the_marts_with_the_comments_the_warehouse_holds(tmp_path):
    example = Path(__file__).resolve().parents[2] / "warehouse.duckdb.example"
    if not example.exists():
        pytest.skip("warehouse.duckdb.example is missing: run `make example`")
    w = tmp_path / "ex.duckdb"
    shutil.copy(example, w)
    con = duckdb.connect(str(w))
    con.execute("comment on column mart_kiel.teff_k is 'changed in the warehouse'")
    con.close()
    res = invoke("catalog", "-w", w)
    assert res.exit_code == 0, res.output
    heads = [line.split(" (")[0] for line in res.stdout.splitlines() if line and not line.startswith(" ")]
    assert "mart_kiel" in heads and "mart_offsets" in heads and all(h.startswith("mart_") for h in heads)
    assert re.search(r"^  teff_k +DOUBLE +changed in the warehouse$", res.stdout, re.M)   # read back, not the file
    every = invoke("catalog", "-w", w, "--all").stdout
    assert "stg_gaia (staging view)" in every and "lbl_offsets (labels table" in every
    one = invoke("catalog", "mart_parameters", "-w", w)
    assert one.stdout.startswith("mart_parameters (marts table, 3 rows): ")
    bad = invoke("catalog", "mart_nope", "-w", w)
    assert bad.exit_code == 2 and "no model mart_nope" in bad.stderr
