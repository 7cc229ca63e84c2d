"""`mgold migrate`: a warehouse written by an older mgold (revision d549e82, before schema versioning,
kept as tests/fixtures/warehouse_d549e82.duckdb by make_old_warehouse.sh) is upgraded and usable; a
pending migration is reported without being applied; a warehouse newer than this mgold is refused."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from mgold.pipeline.cli import app
from mgold.pipeline.migrate import SCHEMA_VERSION, current_version
from mgold.pipeline.warehouse import connect

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "warehouse_d549e82.duckdb"


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_line_error(res) -> str:
    assert res.exit_code != 0 and "Traceback" not in res.output, res.output
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("mgold: error: "), err
    return err


def columns(w: Path, table: str) -> set[str]:
    con = duckdb.connect(str(w), read_only=True)
    try:
        schema, name = table.split(".")
        return {r[0] for r in con.execute("select column_name from duckdb_columns() where schema_name = ? "
                                          "and table_name = ?", [schema, name]).fetchall()}
    finally:
        con.close()


@pytest.fixture()
def old(tmp_path) -> Path:
    w = tmp_path / "old.duckdb"
    shutil.copy(FIXTURE, w)
    return w


def test_the_old_fixture_is_small_and_from_before_versioning():
    assert FIXTURE.stat().st_size < 1_000_000
    assert "pid" not in columns(FIXTURE, "meta.runs") and not columns(FIXTURE, "meta.schema_version")
    assert columns(FIXTURE, "main.lbl_labelled_sample") and columns(FIXTURE, "meta.model_runs")


def test_migrate_check_says_a_migration_is_pending_and_writes_nothing(old):
    before = hashlib.sha256(old.read_bytes()).hexdigest()
    res = invoke("migrate", "--check", "-w", old)
    assert "migration pending" in one_line_error(res) and res.exit_code == 1
    assert "none (before versioning)" in res.stdout and f"writes {SCHEMA_VERSION}" in res.stdout
    doctor = invoke("doctor", "-w", old)                   # names the one fix that comes first
    assert doctor.exit_code == 1 and doctor.stdout.splitlines() == [
        f"meta.schema_version: version none (before versioning), this mgold writes {SCHEMA_VERSION}; "
        f"fix: mgold migrate -w {old}"], doctor.output
    assert hashlib.sha256(old.read_bytes()).hexdigest() == before
    assert not list(old.parent.glob("*.lock")) and not list(old.parent.glob("*.wal"))


def test_migrate_upgrades_a_warehouse_of_an_older_revision_that_then_works(old):
    res = invoke("migrate", "-w", old)
    assert res.exit_code == 0, res.output
    assert f"schema version none (before versioning) -> {SCHEMA_VERSION}" in res.stdout
    assert "alter table meta.runs add column if not exists pid integer" in res.stdout     # says what it did
    con = connect(old, read_only=True)
    try:
        assert current_version(con) == SCHEMA_VERSION
    finally:
        con.close()
    assert {"pid", "host"} <= columns(old, "meta.runs") and columns(old, "meta.data_files")
    assert "up to date" in invoke("migrate", "-w", old).stdout
    assert invoke("migrate", "--check", "-w", old).exit_code == 0
    status = invoke("sql", "status", "-w", old)
    assert status.exit_code == 0 and "lbl_labelled_sample" in status.stdout, status.output
    doctor = invoke("doctor", "-w", old)
    assert "Traceback" not in doctor.output and doctor.exit_code in (0, 1), doctor.output
    problems = [line for line in doctor.stdout.splitlines() if line]
    assert all("; fix: " in line for line in problems if "healthy" not in line), problems
    assert not any("schema_version" in line for line in problems)


@pytest.mark.parametrize("args", [("migrate",), ("migrate", "--check"), ("doctor",), ("sql", "status"),
                                  ("vacuum",), ("catalog",)])
def test_a_warehouse_newer_than_this_mgold_is_refused_in_one_line(tmp_path, args):
    w = tmp_path / "w.duckdb"
    connect(w).close()
    con = duckdb.connect(str(w))
    con.execute("insert into meta.schema_version values (?, now())", [SCHEMA_VERSION + 1])
    con.close()
    res = invoke(*args, "-w", w)
    err = one_line_error(res)
    assert f"schema version {SCHEMA_VERSION + 1}, newer than this mgold" in err and res.exit_code == 1, err


def test_migrate_registers_the_old_globbed_parts_and_finishes_an_interrupted_rename(old):
    """The fixture as the old revision left it with Parquet beside it: the view globbing its folder, one
    part in place and one whose rename a crash interrupted after its ingest committed; a third .tmp
    belongs to no committed run (the old revision deleted those too)."""
    folder = old.parent / "old_files" / "spectra" / "lamost"
    folder.mkdir(parents=True)
    con = duckdb.connect(str(old))
    con.execute(f"set file_search_path = '{old.parent}'")      # the old view's relative glob, as mgold set it
    run = con.execute("select run_id from meta.ingested_files where kind = 'lamost' limit 1").fetchone()[0]
    con.execute(f"copy (select * from landing.lamost_spectra order by obsid limit 2) to '{folder}/part-aaa.parquet'")
    con.execute(f"copy (select * from landing.lamost_spectra order by obsid offset 2) "
                f"to '{folder}/part-bbb.parquet.{run}.tmp' (format parquet)")
    con.execute(f"copy (select 1 as x) to '{folder}/part-ccc.parquet.20990101-dead.tmp' (format parquet)")
    want = con.execute("select obsid from landing.lamost_spectra order by obsid").fetchall()
    con.execute("drop table landing.lamost_spectra")
    con.execute("create view landing.lamost_spectra as select * from read_parquet('old_files/spectra/lamost/*.parquet')")
    con.close()
    res = invoke("migrate", "-w", old)
    assert res.exit_code == 0, res.output
    assert "Finish the renames of committed spectra parts that a crash interrupted" in res.stdout
    assert sorted(p.name for p in folder.iterdir()) == ["part-aaa.parquet", "part-bbb.parquet"]
    con = connect(old, read_only=True)
    try:
        assert con.execute("select obsid from landing.lamost_spectra order by obsid").fetchall() == want
        assert con.execute("select count(*) from meta.data_files").fetchone()[0] == 2
    finally:
        con.close()
    doctor = invoke("doctor", "-w", old)
    assert doctor.exit_code == 0 and "healthy" in doctor.stdout and "2 data file(s)" in doctor.stdout, doctor.output
