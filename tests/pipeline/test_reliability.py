"""Issue 9's reproductions, each as a test: one writer at a time, ad-hoc SQL that cannot write, nothing
mixed or dropped without a word, one line and a documented exit status for every failure, and a build
killed at any moment that reruns into one consistent universe with bit-identical tables."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest
from typer.testing import CliRunner

from mgold.pipeline.bench.ingest import write_dr8_fits
from mgold.pipeline.cli import app
from mgold.pipeline.errors import WarehouseBusy
from mgold.pipeline.warehouse import connect, open_warehouse, write_lock

MGOLD = [sys.executable, "-m", "mgold.pipeline.cli"]


def invoke(*args, **kw):
    return CliRunner().invoke(app, [str(a) for a in args], **kw)


def one_line_error(res) -> str:
    assert res.exit_code != 0, res.output
    err = res.stderr.strip()
    assert "Traceback" not in res.output, res.output
    assert len(err.splitlines()) == 1 and err.startswith("mgold: error: "), err
    return err


@pytest.fixture()
def fits_file(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    return write_dr8_fits(folder / "spec-1.fits", 1, np.random.default_rng(1))


def _commands(fits_file: Path) -> dict[str, list[str]]:
    """Every command that takes -w, with the least it needs to get as far as opening the warehouse."""
    return {
        "build": ["build", "--preset", "tiny"],
        "ingest lamost": ["ingest", "lamost", str(fits_file)],
        "ingest catalog": ["ingest", "catalog", "gaia", str(fits_file)],
        "ingest library": ["ingest", "library", "miles", str(fits_file.parent)],
        "sql run": ["sql", "run"], "sql status": ["sql", "status"], "sql test": ["sql", "test"],
        "sql show": ["sql", "show", "stg_gaia"], "sql query": ["sql", "query", "select 1"],
        "report labels": ["report", "labels"], "report clean": ["report", "clean"],
        "report html": ["report", "html", "--out", str(fits_file.parent / "report")],
        "inspect list": ["inspect", "list"], "inspect show": ["inspect", "show", "t3500_g4.70_m0.00"],
        "inspect decide": ["inspect", "decide", "t3500_g4.70_m0.00", "--keep", "1"],
        "inspect figure": ["inspect", "figure"],
        "inspect accept-suggestions": ["inspect", "accept-suggestions"],
        "report golden": ["report", "golden"],
        "export golden": ["export", "golden", "--fits", str(fits_file.parent / "golden.fits")],
        "runs list": ["runs", "list"], "runs show": ["runs", "show", "latest"],
        "runs diff": ["runs", "diff", "previous", "latest"],
        "laspm run": ["laspm", "run", "--library", "golden"], "report laspm": ["report", "laspm"],
        "doctor": ["doctor"], "vacuum": ["vacuum"], "migrate": ["migrate"], "catalog": ["catalog"],
    }


def test_every_command_that_opens_a_warehouse_is_covered(fits_file):
    import typer.main

    def leaves(cmd, prefix=()):
        subs = getattr(cmd, "commands", None)
        if not subs:
            yield " ".join(prefix), cmd
            return
        for name, sub in subs.items():
            yield from leaves(sub, (*prefix, name))

    with_w = {name for name, c in leaves(typer.main.get_command(app)) if any("-w" in p.opts for p in c.params)}
    assert with_w == set(_commands(fits_file))


def test_every_command_fails_in_one_line_on_a_directory(tmp_path, fits_file):
    d = tmp_path / "d.duckdb"
    d.mkdir()
    for name, args in _commands(fits_file).items():
        res = invoke(*args, "-w", d)
        assert "is a directory" in one_line_error(res), name
        assert res.exit_code == 2, (name, res.output)


def test_every_command_fails_in_one_line_on_a_missing_or_unwritable_warehouse(tmp_path, fits_file):
    readers = {"sql status", "sql test", "sql show", "sql query", "report labels", "report clean", "report html",
               "inspect list", "inspect show", "inspect figure", "runs list", "runs show", "runs diff",
               "report laspm", "report golden", "export golden", "doctor", "migrate", "catalog"}
    for name, args in _commands(fits_file).items():
        if name in readers:
            res = invoke(*args, "-w", tmp_path / "typo.duckdb")
            assert "no warehouse at" in one_line_error(res) and res.exit_code == 1, name
        else:
            res = invoke(*args, "-w", "/proc/mgold/w.duckdb")          # a read-only file system
            assert "cannot" in one_line_error(res) and res.exit_code == 1, (name, res.output)
    assert not (tmp_path / "typo.duckdb").exists()


def _hold(warehouse: Path, seconds: float) -> subprocess.Popen:
    """Another process holding the warehouse open for writing, as a build does."""
    code = ("import sys, time; from mgold.pipeline.warehouse import open_warehouse\n"
            "with open_warehouse(sys.argv[1], command='mgold build --preset demo'):\n"
            "    print('held', flush=True); time.sleep(float(sys.argv[2]))\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(warehouse), str(seconds)], stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_every_command_fails_in_one_line_naming_the_process_that_holds_the_warehouse(tmp_path, fits_file):
    w = tmp_path / "w.duckdb"
    connect(w).close()
    holder = _hold(w, 60)
    try:
        for name, args in _commands(fits_file).items():
            err = one_line_error(invoke(*args, "-w", w))
            assert f"PID {holder.pid}" in err and "mgold build --preset demo" in err, (name, err)
    finally:
        holder.kill()
        holder.wait()


def test_a_second_writer_is_refused_and_with_wait_runs_after_the_first(tmp_path, fits_file):
    w = tmp_path / "w.duckdb"
    with write_lock(w, "mgold build --preset tiny"):
        with pytest.raises(WarehouseBusy, match="mgold build --preset tiny"):
            with open_warehouse(w, command="mgold ingest lamost"):
                pass
    def hold_briefly():
        with write_lock(w, "mgold build"):
            time.sleep(1.5)

    t = threading.Thread(target=hold_briefly)
    t.start()
    time.sleep(0.3)
    t0 = time.perf_counter()
    res = invoke("ingest", "lamost", fits_file, "-w", w, "--wait")
    t.join()
    assert res.exit_code == 0, res.output
    assert time.perf_counter() - t0 > 0.8                      # it waited for the holder to finish


# --------------------------------------------------------------------------- ad-hoc SQL cannot write

@pytest.fixture()
def landed(tmp_path, fits_file) -> Path:
    w = tmp_path / "w.duckdb"
    assert invoke("ingest", "lamost", fits_file, "-w", w).exit_code == 0
    return w


@pytest.mark.parametrize("sql", [
    "copy (select 1 a) to '{part}' (format parquet)",
    "export database '{folder}/dump'",
    "attach '{folder}/other.duckdb' as o",
    "install json", "load json", "set threads = 1", "call pragma_version()", "pragma enable_profiling",
    "select 1; copy (select 1) to '{part}'"])
def test_ad_hoc_sql_can_write_nothing(landed, sql):
    part = next((landed.parent / "w_files" / "spectra" / "lamost").glob("*.parquet"))
    before = hashlib.sha256(part.read_bytes()).hexdigest()
    res = invoke("sql", "query", sql.format(part=part, folder=landed.parent), "-w", landed)
    assert res.exit_code == 2 and "read-only" in one_line_error(res) or "one statement" in res.stderr
    assert hashlib.sha256(part.read_bytes()).hexdigest() == before
    assert not (landed.parent / "dump").exists() and not (landed.parent / "other.duckdb").exists()


def test_result_files_are_written_by_mgold_never_inside_the_warehouse(landed, tmp_path):
    part = next((landed.parent / "w_files" / "spectra" / "lamost").glob("*.parquet"))
    for flag, target in (("--parquet", part), ("--csv", landed), ("--parquet", landed.parent / "w_files" / "x.pq")):
        res = invoke("sql", "query", "select 1 a", "-w", landed, flag, target)
        assert res.exit_code == 2 and "refusing to write inside the warehouse" in one_line_error(res)
    out = tmp_path / "ok.parquet"
    res = invoke("sql", "query", "select obsid, flux from landing.lamost_spectra", "-w", landed, "--parquet", out)
    assert res.exit_code == 0 and "wrote 1 rows" in res.stdout
    assert duckdb.sql(f"select count(*) from '{out}'").fetchall() == [(1,)]


def test_csv_to_stdout_does_not_hang_or_reread_its_output(landed):
    res = invoke("sql", "query", "select obsid, 'a,b' as s from landing.lamost_headers", "-w", landed, "--csv", "-")
    assert res.exit_code == 0 and res.stdout.splitlines() == ["obsid,s", '1,"a,b"']


def test_a_rewritten_spectrum_file_is_named_by_sql_status(landed):
    part = next((landed.parent / "w_files" / "spectra" / "lamost").glob("*.parquet"))
    assert "WARNING" not in invoke("sql", "status", "-w", landed).stderr
    duckdb.sql(f"copy (select 1 a) to '{part}' (format parquet)")          # what the issue did through mgold
    res = invoke("sql", "status", "-w", landed)
    assert res.exit_code == 0 and "was rewritten" in res.stderr and part.name in res.stderr


# --------------------------------------------------------------------------- nothing mixed or dropped silently

def test_real_files_are_refused_by_a_warehouse_holding_a_universe(landed, tmp_path):
    with open_warehouse(landed, command="test") as con:
        con.execute("insert into meta.universe values ('ab' || repeat('0', 62), 'inputs')")
    other = tmp_path / "more"
    other.mkdir()
    f = write_dr8_fits(other / "spec-2.fits", 2, np.random.default_rng(2))
    for args in (("ingest", "lamost", f), ("ingest", "catalog", "gaia", f)):
        res = invoke(*args, "-w", landed)
        assert res.exit_code == 1 and "holds the synthetic universe" in one_line_error(res)
    con = connect(landed, read_only=True)
    assert con.execute("select count(*) from landing.lamost_headers").fetchone()[0] == 1
    con.close()


def test_a_build_whose_ingest_rejected_input_exits_3_and_says_how_many(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_dr8_fits(folder / "spec-1.fits", 1, np.random.default_rng(1))
    (folder / "spec-2.fits").write_bytes((folder / "spec-1.fits").read_bytes()[:5000])   # truncated
    res = invoke("build", "--inputs", folder, "--until", "ingest", "-w", tmp_path / "w.duckdb")
    assert res.exit_code == 3, res.output
    assert "ingest rejected 1 file(s)/row(s)" in res.stdout


def test_a_killed_run_is_marked_aborted_by_the_next_writer(landed, fits_file):
    with open_warehouse(landed, command="test") as con:
        con.execute("insert into meta.runs (run_id, command, started_at, status, pid, host) "
                    "values ('dead', 'mgold build', now(), 'running', 999999, 'elsewhere')")
    assert invoke("ingest", "lamost", fits_file, "-w", landed).exit_code == 0
    con = connect(landed, read_only=True)
    got = con.execute("select status, pid, host from meta.runs where run_id = 'dead'").fetchone()
    assert got == ("aborted", 999999, "elsewhere")
    assert not con.execute("select * from meta.runs where status = 'running'").fetchall()
    con.close()


# --------------------------------------------------------------------------- bad usage is exit 2

@pytest.mark.parametrize("args", [
    ("build", "--preset", "tiny", "--set", "nonexistent.key=1"),
    ("build", "--preset", "tiny", "--set", "clean.dbscan_eps=-1"),
    ("build", "--preset", "tiny", "--set", "clean.top_n_per_bin=0"),
    ("sql", "run", "--set", "select.giant_fit_order=5"),
    ("ingest", "lamost", "{fits}", "--set", "nonexistent.key=1"),
    ("ingest", "lamost", "{missing}"),
    ("sql", "run", "--select", "no_such_model"),
])
def test_bad_usage_is_one_line_and_exit_2(tmp_path, fits_file, args):
    args = [a.format(fits=fits_file, missing=tmp_path / "nope.fits") for a in args]
    res = invoke(*args, "-w", tmp_path / "w.duckdb")
    one_line_error(res)
    assert res.exit_code == 2, res.output
    assert not (tmp_path / "w_files").exists()         # refused before anything was written


def test_the_error_handler_itself_turns_any_exception_into_one_line(monkeypatch):
    from mgold.pipeline.cli import sql as sql_cli

    def boom(*a, **k):
        raise KeyError("a bug deep inside\nwith a second line")

    monkeypatch.setattr(sql_cli, "config", boom)
    res = invoke("sql", "status", "-w", "x.duckdb")
    assert res.exit_code == 1 and "KeyError: a bug deep inside" in one_line_error(res)


# --------------------------------------------------------------------------- killed builds, bit-identical rebuilds

def _build_cmd(w: Path, seed: int) -> list[str]:
    return [*MGOLD, "build", "--preset", "tiny", "--seed", str(seed), "--set", "synth.n_stars=700", "-w", str(w)]


def _kill_when(cmd: list[str], marker: str, extra_s: float = 0.0) -> str:
    """Start a build and SIGKILL it once its output shows ``marker`` (plus ``extra_s``)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seen = []
    for line in p.stdout:
        seen.append(line)
        if marker in line:
            time.sleep(extra_s)
            break
    p.kill()
    p.wait()
    return "".join(seen)


def _row_hashes(w: Path) -> dict[str, str]:
    con = connect(w, read_only=True)
    try:
        out = {}
        for (t,) in con.execute("select table_name from duckdb_tables() where schema_name = 'main' "
                                "order by 1").fetchall():
            cols = [c for (c,) in con.execute("select column_name from duckdb_columns() where schema_name = 'main' "
                                              "and table_name = ? and column_name <> 'run_id'", [t]).fetchall()]
            sel = ", ".join(f'"{c}"' for c in cols)
            out[t] = str(con.execute(f'select bit_xor(hash(({sel}))), count(*) from "{t}"').fetchone())
        return out
    finally:
        con.close()


def _assert_one_universe(w: Path) -> None:
    inputs = w.parent / "w_files" / "inputs"
    manifest = hashlib.sha256((inputs / "manifest.json").read_bytes()).hexdigest()
    con = connect(w, read_only=True)
    try:
        assert con.execute("select manifest_sha256 from meta.universe").fetchall() == [(manifest,)]
        n_headers, n_truth, n_orphan = con.execute("""
            select (select count(*) from landing.lamost_headers), (select count(*) from truth.spectra),
                   (select count(*) from landing.lamost_headers h anti join truth.spectra t using (obsid))""").fetchone()
        assert n_headers == n_truth and n_orphan == 0
        assert con.execute("select count(*) from landing.lamost_spectra").fetchone()[0] == n_headers
        assert not con.execute("select * from meta.runs where status = 'running'").fetchall()
        listed = {r[0] for r in con.execute("select path from meta.data_files").fetchall()}
    finally:
        con.close()
    on_disk = {p.relative_to(w.parent).as_posix() for p in (w.parent / "w_files" / "spectra").rglob("*") if p.is_file()}
    assert on_disk == listed                              # no orphan, nothing missing
    res = subprocess.run([*MGOLD, "sql", "test", "-w", str(w)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-2000:]


@pytest.mark.slow
def test_a_build_killed_at_any_moment_reruns_into_one_universe_with_every_check_passing(tmp_path):
    w = tmp_path / "w.duckdb"
    assert subprocess.run(_build_cmd(w, 42), capture_output=True).returncode == 0
    # kill new universes mid-synth, mid-ingest (the landing replacement), mid-models and in the clean stage
    for seed, marker, extra in ((30, "[synth] ...", 1.0), (31, "[ingest] ...", 0.5), (32, "[ingest] ...", 1.5),
                                (33, "[labels]", 0.0), (34, "cln_bins", 0.0)):
        log = _kill_when(_build_cmd(w, seed), marker, extra)
        assert marker in log, log
    res = subprocess.run(_build_cmd(w, 42), capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    _assert_one_universe(w)
    con = connect(w, read_only=True)
    aborted = con.execute("select count(*) from meta.runs where status = 'aborted'").fetchone()[0]
    con.close()
    assert aborted >= 5
    # same inputs, seed and config: every table bit-identical when rebuilt from scratch
    before = _row_hashes(w)
    res = subprocess.run([*MGOLD, "sql", "run", "--full-refresh", "-w", str(w)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    after = _row_hashes(w)
    assert {t for t in before if before[t] != after[t]} == set()
    assert json.loads(json.dumps(before)) == after


@pytest.mark.slow
def test_two_builds_of_the_same_universe_give_bit_identical_tables(tmp_path):
    """Landing rows land in file order and SQL models run single-threaded: float aggregates add in the
    same order in every build, so every table matches row for row (the spectra's order within a Python
    model's input does not matter: each row is computed alone)."""
    hashes = []
    for name in ("one", "two"):
        w = tmp_path / name / "w.duckdb"
        res = subprocess.run(_build_cmd(w, 42) + ["--no-report"], capture_output=True, text=True)
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        hashes.append(_row_hashes(w))
    assert set(hashes[0]) == set(hashes[1]) and len(hashes[0]) > 30
    assert [t for t in hashes[0] if hashes[0][t] != hashes[1][t]] == []
