"""`mgold sql` through typer's CliRunner, on a throwaway model tree."""

from __future__ import annotations

import duckdb
import pytest
from typer.testing import CliRunner

import mgold.pipeline.runner as runner
from mgold.pipeline.cli import app

cli = CliRunner()
COMMANDS = ["run", "status", "test", "show", "query"]


def write_model(root, layer, name, body, params="", kind="table", tests=""):
    path = root / layer / f"{name}.sql"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"-- description: {name}\n-- kind: {kind}\n-- params: {params}\n-- tests: {tests}\n{body}\n")


@pytest.fixture()
def env(tmp_path, monkeypatch, warehouse):
    """A tree (stg_a view -> xm_b table, with a duplicate id) and a warehouse holding landing.src."""
    root = tmp_path / "sql"
    write_model(root, "staging", "stg_a", "select id, snr from landing.src", kind="view",
                tests="unique(id)")
    write_model(root, "xmatch", "xm_b", "select * from stg_a where snr >= getvariable('select.snr_i_min')",
                params="select.snr_i_min", tests="not_null(id)")
    real_load = runner.Project.load.__func__
    monkeypatch.setattr(runner.Project, "load",
                        classmethod(lambda cls, sql_root=None, stages=None: real_load(cls, root, None)))
    con = duckdb.connect(str(warehouse))
    con.execute("create schema landing")
    con.execute("create table landing.src as select * from (values (1, 5.0), (2, 20.0), (2, 30.0)) t(id, snr)")
    con.close()
    return root, str(warehouse)


def invoke(*args):
    return cli.invoke(app, ["sql", *args])


@pytest.mark.parametrize("command", COMMANDS)
def test_every_sql_command_has_help_with_an_example(command):
    res = invoke(command, "--help")
    assert res.exit_code == 0 and "Example:" in res.output


def test_run_prints_one_line_per_model_and_is_fresh_the_second_time(env):
    _, w = env
    first = invoke("run", "-w", w)
    assert first.exit_code == 0, first.output
    assert "2 built" in first.stdout
    assert [ln.split()[0] for ln in first.stderr.splitlines()] == ["built", "built"]
    second = invoke("run", "-w", w)
    assert second.exit_code == 0 and "2 fresh" in second.stdout


def test_run_with_set_rebuilds_the_model_using_the_key(env):
    _, w = env
    invoke("run", "-w", w)
    res = invoke("run", "-w", w, "--set", "select.snr_i_min=25")
    assert res.exit_code == 0 and "config changed: select.snr_i_min" in res.stderr


def test_run_exits_non_zero_with_one_line_when_a_model_fails(env):
    root, w = env
    write_model(root, "xmatch", "xm_b", "select missing_col from stg_a")
    res = invoke("run", "-w", w)
    assert res.exit_code == 1
    assert "mgold: error: 1 model(s) failed; first: xm_b:" in res.stderr


def test_run_rejects_an_unknown_selection(env):
    _, w = env
    res = invoke("run", "-w", w, "--select", "nope")
    assert res.exit_code == 2 and "unknown model 'nope'" in res.stderr


def test_status_shows_staleness_and_reason(env):
    _, w = env
    invoke("run", "-w", w)
    res = invoke("status", "-w", w, "--set", "select.snr_i_min=25")
    assert res.exit_code == 0
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("xm_b"))
    assert "yes" in line and "config changed" in line


def test_test_command_fails_and_prints_the_offending_rows(env):
    _, w = env
    invoke("run", "-w", w)
    res = invoke("test", "-w", w)
    assert res.exit_code == 1
    assert "FAIL  stg_a: unique(id): 1 offending row(s)" in res.stdout
    assert "pass  xm_b: not_null(id)" in res.stdout and "1 passed, 1 failed" in res.stdout


def test_show_lists_params_with_values_lineage_and_last_run(env):
    _, w = env
    invoke("run", "-w", w)
    res = invoke("show", "xm_b", "-w", w)
    assert res.exit_code == 0, res.output
    assert "select.snr_i_min = 10.0" in res.stdout
    assert "upstream:    stg_a" in res.stdout and "last run:    built" in res.stdout
    bad = invoke("show", "xm_bb", "-w", w)                 # an unknown model is bad usage
    assert bad.exit_code == 2 and "did you mean xm_b" in bad.stderr


def test_query_prints_a_table_and_writes_csv_and_parquet(env, tmp_path):
    _, w = env
    res = invoke("query", "select id, count(*) as n from landing.src group by id order by id", "-w", w)
    assert res.exit_code == 0 and res.stdout.splitlines()[0].split() == ["id", "n"]
    assert res.stdout.splitlines()[-1].split() == ["2", "2"]
    out = tmp_path / "q.csv"
    assert invoke("query", "select * from landing.src", "-w", w, "--csv", str(out)).exit_code == 0
    assert out.read_text().splitlines()[0] == "id,snr"
    pq = tmp_path / "q.parquet"
    assert "wrote 3 rows" in invoke("query", "select * from landing.src", "-w", w, "--parquet", str(pq)).stdout
    assert duckdb.sql(f"select count(*) from '{pq}'").fetchall() == [(3,)]


def test_query_reports_bad_sql_in_one_line(env):
    _, w = env
    res = invoke("query", "select nope from landing.src", "-w", w)
    assert res.exit_code == 1 and res.stderr.count("\n") == 1 and "nope" in res.stderr


def test_read_commands_never_create_a_warehouse(tmp_path):
    missing = tmp_path / "absent.duckdb"
    res = invoke("query", "select 1", "-w", str(missing))
    assert res.exit_code == 1 and "no warehouse at" in res.stderr
    res = invoke("status", "-w", str(missing))           # a typo in -w is an error, not "never built"
    assert res.exit_code == 1 and "no warehouse at" in res.stderr
    assert not missing.exists()


def test_query_can_call_the_spectral_udfs(warehouse):
    con = duckdb.connect(str(warehouse))
    con.execute("create table spectra as select 1::bigint obsid, [1, 2, 3, 4, 5, 6]::float[] flux, "
                "[1, 1, 1, 1, 1, 1]::float[] ivar, 3.6::double loglam0, 1e-4::double dloglam")
    con.close()
    res = invoke("query", "select len(rv_shift(flux, ivar, loglam0, dloglam, 0.0).flux) n from spectra",
                 "-w", str(warehouse))
    assert res.exit_code == 0, res.output
    assert res.stdout.split()[-1] == "6"
    plain = invoke("query", "select 'resample is only a word here' as s", "-w", str(warehouse))
    assert plain.exit_code == 0 and "resample is only" in plain.stdout


def test_calls_udf_sees_calls_not_words():
    from mgold.udfs import calls_udf

    assert calls_udf("select RV_SHIFT (flux, ivar, a, b, 1.0) from t")
    assert not calls_udf("select rv_shift_kms from t")
