"""`mgold runs list | show | diff` on a throwaway model tree built three times (the runner's own ledger)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from mgold.pipeline import runs
from mgold.pipeline.cli import app
from mgold.pipeline.config import DEFAULT
from mgold.pipeline.runner import Project, run
from mgold.pipeline.warehouse import connect

HEADER = "-- description: {name} for a test\n-- grain: one row per id\n-- kind: table\n-- params: {params}\n"


def _model(root, layer, name, body, params=""):
    path = root / layer / f"{name}.sql"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER.format(name=name, params=params) + body + "\n")


@pytest.fixture()
def history(tmp_path):
    """Three runs: 1 builds everything; 2 after an edit of xm_b's SQL; 3 with select.snr_i_min 10 -> 25.
    stg_a is fresh in runs 2 and 3 and lbl_c only follows xm_b."""
    root = tmp_path / "sql"
    _model(root, "staging", "stg_a", "select id, snr from landing.src")
    _model(root, "xmatch", "xm_b", "select * from stg_a where snr >= getvariable('select.snr_i_min')",
           "select.snr_i_min")
    _model(root, "labels", "lbl_c", "select id, snr * 2 as snr2 from xm_b")
    wh = tmp_path / "w.duckdb"
    con = connect(wh)
    con.execute("create table landing.src as select * from (values (1, 5.0), (2, 20.0), (3, 30.0)) t(id, snr)")
    ids = []
    for i, cfg in enumerate((DEFAULT, DEFAULT, DEFAULT.with_overrides({"select.snr_i_min": 25}))):
        if i == 1:
            _model(root, "xmatch", "xm_b", "select id, snr from stg_a where snr >= getvariable('select.snr_i_min')",
                   "select.snr_i_min")
        ids.append(f"2026010{i + 1}T000000-run{i + 1}")
        assert all(r.status in ("built", "fresh") for r in run(con, Project.load(root, stages=None), cfg, run_id=ids[-1]))
    con.close()
    return wh, ids


def test_state_after_a_run_keeps_the_models_it_did_not_rebuild(history):
    wh, (r1, r2, r3) = history
    con = connect(wh, read_only=True)
    try:
        assert [(r.run_id, r.n_built) for r in runs.list_runs(con)] == [(r1, 3), (r2, 2), (r3, 2)]
        after2 = runs.show(con, r2).models
        assert after2["stg_a"].run_id == r1 and after2["xm_b"].run_id == r2
        after1 = runs.show(con, r1).models
        assert after1["xm_b"].sql_sha256 != after2["xm_b"].sql_sha256
        assert after1["xm_b"].row_count == 2 and runs.show(con, r3).models["xm_b"].row_count == 1
        assert runs.resolve(con, "latest").run_id == r3 and runs.resolve(con, "previous").run_id == r2
        assert runs.resolve(con, "20260102").run_id == r2
        with pytest.raises(runs.RunError, match="ambiguous"):
            runs.resolve(con, "2026")
    finally:
        con.close()


def test_diff_names_edited_sql_rebuilt_downstream_and_changed_config(history):
    wh, (r1, r2, r3) = history
    con = connect(wh, read_only=True)
    try:
        d = runs.diff(con, r1, r2)
        assert d.parameters == []
        assert {c.model: c.change for c in d.models} == {"xm_b": "sql changed", "lbl_c": "upstream rebuilt"}
        d = runs.diff(con, r2, r3)
        assert d.parameters == [("select.snr_i_min", "10.0", "25.0")]
        changes = {c.model: c for c in d.models}
        assert changes["xm_b"].change == "config changed" and (changes["xm_b"].rows_a, changes["xm_b"].rows_b) == (2, 1)
        assert changes["lbl_c"].change == "upstream rebuilt" and "stg_a" not in changes
        assert runs.diff(con, r3, r3).models == []
    finally:
        con.close()


def test_runs_cli_lists_shows_and_diffs(history):
    wh, (r1, r2, r3) = history
    cli = CliRunner()
    out = cli.invoke(app, ["runs", "list", "-w", str(wh)])
    assert out.exit_code == 0, out.output
    assert [ln.split()[0] for ln in out.output.splitlines()[2:]] == [r1, r2, r3]
    out = cli.invoke(app, ["runs", "show", "run2", "-w", str(wh)])
    assert out.exit_code == 1 and "no run 'run2'" in out.output      # ids match by prefix only
    out = cli.invoke(app, ["runs", "show", "20260102", "-w", str(wh)])
    assert out.exit_code == 0, out.output
    text = out.output
    assert text.startswith(f"run {r2}: ") and "select.snr_i_min" in text and "synth.seed" not in text
    assert "models this run touched" in text and "stg_a" in text and r1 in text     # stg_a still from run 1
    assert "synth.seed" in cli.invoke(app, ["runs", "show", r2, "--all-parameters", "-w", str(wh)]).output
    out = cli.invoke(app, ["runs", "diff", "previous", "latest", "-w", str(wh)])
    assert out.exit_code == 0, out.output
    assert "parameters changed (1)" in out.output and "config changed" in out.output
    line = next(ln for ln in out.output.splitlines() if ln.startswith("xm_b"))
    assert line.split()[-2:] == ["2", "1"]


def test_runs_cli_fails_in_one_line_on_a_missing_warehouse_or_run(tmp_path, history):
    wh, _ = history
    for args in (["runs", "list", "-w", str(tmp_path / "none.duckdb")],
                 ["runs", "show", "nope", "-w", str(wh)], ["runs", "diff", "latest", "2026", "-w", str(wh)]):
        out = CliRunner().invoke(app, args)
        assert out.exit_code == 1 and len(out.output.strip().splitlines()) == 1, (args, out.output)
        assert out.output.startswith("mgold: error: ")
    bare = tmp_path / "bare.duckdb"
    connect(bare).close()
    assert CliRunner().invoke(app, ["runs", "list", "-w", str(bare)]).output.strip() == "no runs recorded"
    out = CliRunner().invoke(app, ["runs", "show", "latest", "-w", str(bare)])
    assert out.exit_code == 1 and "no runs recorded" in out.output
