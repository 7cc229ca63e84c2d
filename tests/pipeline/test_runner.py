"""The versioned-SQL runner on throwaway model trees in temp dirs."""

from __future__ import annotations

import textwrap

import duckdb
import pytest

from mgold.pipeline.config import DEFAULT
from mgold.pipeline.runner import (LAYERS, ModelError, Project, bind_config, compile_model_sql, lineage,
                                   load_models, model_states, run, run_tests, select_models)


def write_model(root, layer, name, body, params="", kind="table", tests="", extra=""):
    path = root / layer / f"{name}.sql"
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (f"-- description: {name} for a test\n-- grain: one row per id\n-- kind: {kind}\n"
              f"-- params: {params}\n-- tests: {tests}\n{extra}")
    path.write_text(header + textwrap.dedent(body).strip() + "\n")
    return path


@pytest.fixture()
def tree(tmp_path):
    """landing.src -> stg_a (view) -> xm_b (table, uses select.snr_i_min) -> lbl_c."""
    root = tmp_path / "sql"
    write_model(root, "staging", "stg_a", "select id, snr from landing.src", kind="view",
                tests="unique(id)")
    write_model(root, "xmatch", "xm_b", """
        with a as (select * from stg_a)
        select * from a where snr >= getvariable('select.snr_i_min')
    """, params="select.snr_i_min")
    write_model(root, "labels", "lbl_c", "select id, snr * 2 as snr2 from xm_b")
    return root


@pytest.fixture()
def con(tmp_path):
    c = duckdb.connect(str(tmp_path / "w.duckdb"))
    c.execute("create schema landing")
    c.execute("create table landing.src as select * from (values (1, 5.0), (2, 20.0), (3, 30.0)) t(id, snr)")
    yield c
    c.close()


def statuses(results):
    return {r.name: r.status for r in results}


def go(con, root, cfg=DEFAULT, stages=None, **kw):
    return run(con, Project.load(root, stages=stages), cfg, **kw)


# --------------------------------------------------------------------------- binding / compile

def test_bind_config_gives_every_key_an_explicit_type():
    con = duckdb.connect()
    flat = bind_config(con, DEFAULT, run_id="r1")
    types = dict(con.execute(
        "select 'f', typeof(getvariable('select.snr_i_min')) union all "
        "select 'i', typeof(getvariable('clean.top_n_per_bin')) union all "
        "select 't', typeof(getvariable('labels.dwarf_priority')) union all "
        "select 'r', getvariable('run_id')").fetchall())
    assert types == {"f": "DOUBLE", "i": "BIGINT", "t": "VARCHAR[]", "r": "r1"}
    assert con.execute("select getvariable('labels.dwarf_priority')").fetchone()[0] == \
        list(DEFAULT.labels.dwarf_priority)
    assert len(flat) == len(DEFAULT.flat())


def test_compile_model_sql_builds_a_model_on_a_bare_connection(tree):
    models = load_models(tree, stages=None)
    con = duckdb.connect()
    bind_config(con, DEFAULT.with_overrides({"select.snr_i_min": 25}))
    con.execute("create table stg_a as select * from (values (1, 5.0), (3, 30.0)) t(id, snr)")
    con.execute(f"create table x as {compile_model_sql(models['xm_b'])}")
    assert con.execute("select id from x").fetchall() == [(3,)]


def test_model_header_and_dependencies_are_read_from_the_file(tree):
    m = load_models(tree, stages=None)["xm_b"]
    assert (m.layer, m.kind, m.depends_on, m.params) == ("xmatch", "table", ("stg_a",),
                                                         ("select.snr_i_min",))
    a = load_models(tree, stages=None)["stg_a"]
    assert a.depends_on == ("landing.src",) and a.kind == "view" and str(a.tests[0]) == "unique(id)"


def test_empty_tree_loads_nothing_and_runs_nothing(tmp_path, con):
    assert load_models(tmp_path / "nothing", stages=None) == {}
    assert go(con, tmp_path / "nothing") == []


# --------------------------------------------------------------------------- order and selection

def test_models_build_in_layer_then_dependency_order(tmp_path, con):
    root = tmp_path / "sql"
    write_model(root, "staging", "stg_z", "select * from landing.src")
    write_model(root, "staging", "stg_a2", "select * from stg_z")       # same layer, depends on z
    write_model(root, "labels", "lbl_a", "select * from stg_a2")
    write_model(root, "xmatch", "xm_q", "select * from stg_z")
    order = [r.name for r in go(con, root)]
    assert order == ["stg_z", "stg_a2", "xm_q", "lbl_a"]


def test_select_picks_upstream_downstream_and_layers(tree):
    models = load_models(tree, stages=None)
    assert select_models(models, "xm_b") == {"xm_b"}
    assert select_models(models, "xm_b+") == {"xm_b", "lbl_c"}
    assert select_models(models, "+xm_b") == {"stg_a", "xm_b"}
    assert select_models(models, "layer:labels") == {"lbl_c"}
    assert select_models(models, None, until_layer="xmatch") == {"stg_a", "xm_b"}
    with pytest.raises(ValueError, match="unknown model 'xm_bb'.*xm_b"):
        select_models(models, "xm_bb")


def test_lineage_maps_both_directions(tree):
    up, down = lineage(load_models(tree, stages=None))
    assert up["stg_a"] == {"landing.src"} and down["stg_a"] == {"xm_b"} and down["lbl_c"] == set()


def test_dependency_cycle_fails_the_models_in_it(tmp_path, con):
    root = tmp_path / "sql"
    write_model(root, "staging", "stg_p", "select * from stg_q")
    write_model(root, "staging", "stg_q", "select * from stg_p")
    res = go(con, root)
    assert statuses(res) == {"stg_p": "failed", "stg_q": "failed"}
    assert "cycle" in res[0].error


# --------------------------------------------------------------------------- staleness

def test_second_run_finds_everything_fresh(tree, con):
    assert set(statuses(go(con, tree)).values()) == {"built"}
    second = go(con, tree)
    assert set(statuses(second).values()) == {"fresh"}
    assert {r.name: r.rows for r in second}["xm_b"] == 2   # S/N 5 is below the cut of 10


def test_sql_change_rebuilds_the_model_and_its_downstream_only(tree, con):
    go(con, tree)
    write_model(tree, "xmatch", "xm_b", """
        select * from stg_a where snr >= getvariable('select.snr_i_min') and id > 1
    """, params="select.snr_i_min")
    res = {r.name: r for r in go(con, tree)}
    assert {n: r.status for n, r in res.items()} == {"stg_a": "fresh", "xm_b": "built", "lbl_c": "built"}
    assert res["xm_b"].reason == "SQL changed" and res["lbl_c"].reason == "upstream xm_b rebuilt"
    assert con.execute("select count(*) from lbl_c").fetchone()[0] == 2


def test_config_change_rebuilds_only_models_using_the_key(tree, con):
    go(con, tree)
    unused = DEFAULT.with_overrides({"clean.cap_per_bin": 9})
    assert set(statuses(go(con, tree, unused)).values()) == {"fresh"}
    used = DEFAULT.with_overrides({"select.snr_i_min": 25})
    res = {r.name: r for r in go(con, tree, used)}
    assert res["stg_a"].status == "fresh" and res["xm_b"].status == "built"
    assert res["xm_b"].reason == "config changed: select.snr_i_min"
    assert con.execute("select count(*) from lbl_c").fetchone()[0] == 1


def test_upstream_rebuilt_in_an_earlier_run_makes_downstream_stale(tree, con):
    go(con, tree)
    go(con, tree, select="stg_a", full_refresh=True)
    states = {s.name: s for s in model_states(con, Project.load(tree, stages=None), DEFAULT)}
    assert not states["stg_a"].stale
    assert states["xm_b"].stale and states["xm_b"].reason == "upstream stg_a rebuilt"
    assert states["lbl_c"].stale and states["lbl_c"].reason == "upstream xm_b stale"
    assert statuses(go(con, tree)) == {"stg_a": "fresh", "xm_b": "built", "lbl_c": "built"}


def test_landing_change_rebuilds_its_readers(tree, con):
    go(con, tree)
    con.execute("insert into landing.src values (4, 40.0)")
    con.execute("insert into meta.ingested_files values ('abc', 'f.csv', 'src', 'r', 1, now())")
    res = {r.name: r for r in go(con, tree)}
    assert res["stg_a"].status == "built" and res["stg_a"].reason == "landing.src changed"
    assert con.execute("select count(*) from lbl_c").fetchone()[0] == 3


def test_dropped_relation_is_rebuilt(tree, con):
    go(con, tree)
    con.execute("drop table lbl_c")
    res = {r.name: r for r in go(con, tree)}
    assert res["lbl_c"].status == "built" and res["lbl_c"].reason == "relation missing"


# --------------------------------------------------------------------------- atomicity

def test_failure_keeps_previous_table_and_skips_downstream(tree, con):
    go(con, tree)
    before = con.execute("select * from xm_b order by id").fetchall()
    write_model(tree, "xmatch", "xm_b", "select no_such_column from stg_a")
    res = {r.name: r for r in go(con, tree)}
    assert res["xm_b"].status == "failed" and "no_such_column" in res["xm_b"].error
    assert res["lbl_c"].status == "skipped" and res["lbl_c"].reason == "upstream xm_b failed"
    assert con.execute("select * from xm_b order by id").fetchall() == before
    leftovers = con.execute("select count(*) from information_schema.tables "
                            "where table_name like '%__tmp_%'").fetchone()[0]
    assert leftovers == 0
    ledger = con.execute("select model, status, error is not null from meta.model_runs "
                         "where run_id = (select max(run_id) from meta.model_runs "
                         "where status = 'failed')").fetchall()
    assert ("xm_b", "failed", True) in ledger and ("lbl_c", "skipped", True) in ledger


def test_failed_view_keeps_previous_view(tree, con):
    go(con, tree)
    write_model(tree, "staging", "stg_a", "select idd from landing.src", kind="view")
    assert statuses(go(con, tree))["stg_a"] == "failed"
    assert con.execute("select count(*) from stg_a").fetchone()[0] == 3


def test_model_can_switch_between_view_and_table(tree, con):
    go(con, tree)
    write_model(tree, "staging", "stg_a", "select id, snr from landing.src", kind="table")
    assert statuses(go(con, tree))["stg_a"] == "built"
    kind = con.execute("select table_type from information_schema.tables "
                       "where table_name = 'stg_a'").fetchone()[0]
    assert kind == "BASE TABLE"


def test_run_records_runs_parameters_and_ledger(tree, con):
    go(con, tree, run_id="run-1")
    assert con.execute("select status from meta.runs where run_id = 'run-1'").fetchone() == ("ok",)
    value = con.execute("select value from meta.run_parameters where run_id = 'run-1' "
                        "and key = 'select.snr_i_min'").fetchone()[0]
    assert value == "10.0"
    rows = dict(con.execute("select model, row_count from meta.model_runs where run_id = 'run-1'").fetchall())
    assert rows == {"stg_a": None, "xm_b": 2, "lbl_c": 2}


def test_missing_landing_source_fails_with_a_clear_message(tree, con):
    con.execute("drop table landing.src")
    res = go(con, tree)
    assert res[0].status == "failed" and "landing.src is missing" in res[0].error


def test_on_event_is_called_once_per_model(tree, con):
    seen = []
    go(con, tree, on_event=seen.append)
    assert [r.name for r in seen] == ["stg_a", "xm_b", "lbl_c"]


def test_models_may_stamp_rows_with_the_run_id(tmp_path, con):
    root = tmp_path / "sql"
    write_model(root, "staging", "stg_r", "select id, getvariable('run_id') as run_id from landing.src")
    m = load_models(root, stages=None)["stg_r"]
    assert m.params == () and m.error is None
    go(con, root, run_id="stamp-7")
    assert con.execute("select distinct run_id from stg_r").fetchall() == [("stamp-7",)]


# --------------------------------------------------------------------------- honest headers

def test_header_params_must_match_getvariable_calls(tmp_path):
    root = tmp_path / "sql"
    write_model(root, "staging", "stg_missing", "select getvariable('select.snr_i_min') x")
    write_model(root, "staging", "stg_extra", "select 1 x", params="select.snr_i_min, clean.cap_per_bin")
    models = load_models(root, stages=None)
    assert "uses select.snr_i_min not listed" in models["stg_missing"].error
    assert "lists clean.cap_per_bin, select.snr_i_min never read" in models["stg_extra"].error
    with pytest.raises(ModelError, match="stg_missing"):
        compile_model_sql(models["stg_missing"])


def test_unknown_config_key_is_an_error(tmp_path):
    root = tmp_path / "sql"
    write_model(root, "staging", "stg_k", "select getvariable('select.snr_min') x", params="select.snr_min")
    assert "unknown config key(s) select.snr_min" in load_models(root, stages=None)["stg_k"].error


def test_truth_reference_is_refused(tmp_path, con):
    root = tmp_path / "sql"
    write_model(root, "staging", "stg_t", "with t as (select * from truth.stars) select * from t")
    m = load_models(root, stages=None)["stg_t"]
    assert "truth.stars" in m.error and "evaluation code only" in m.error
    assert statuses(go(con, root)) == {"stg_t": "failed"}


def test_broken_models_load_with_errors_instead_of_raising(tmp_path):
    root = tmp_path / "sql"
    write_model(root, "staging", "stg_ok", "select 1 as id")
    write_model(root, "staging", "stg_bad", "select from where (")
    write_model(root, "staging", "stg_two", "select 1; select 2")
    write_model(root, "nolayer", "x_odd", "select 1")
    write_model(root, "labels", "lbl_kind", "select 1", kind="incremental")
    write_model(root, "labels", "lbl_unknown", "select * from not_a_model")
    write_model(root, "staging", "stg_later", "select * from lbl_kind")
    write_model(root, "staging", "stg_tests", "select 1 id", tests="uniq(id)")
    models = load_models(root, stages=None)
    assert models["stg_ok"].error is None
    assert "parse" in models["stg_bad"].error
    assert "one SELECT" in models["stg_two"].error
    assert "unknown layer 'nolayer'" in models["x_odd"].error
    assert "kind 'incremental'" in models["lbl_kind"].error
    assert "neither a model nor landing" in models["lbl_unknown"].error
    assert "later layer 'labels'" in models["stg_later"].error
    assert "unknown test 'uniq'" in models["stg_tests"].error


def test_header_tests_may_continue_on_indented_lines(tmp_path):
    path = tmp_path / "sql" / "staging" / "stg_l.sql"
    path.parent.mkdir(parents=True)
    path.write_text("-- description: d\n-- tests: unique(id);\n--    not_null(id, x)\n"
                    "-- a free comment: ignored\nselect 1 id, 2 x\n")
    m = load_models(tmp_path / "sql", stages=None)["stg_l"]
    assert [str(t) for t in m.tests] == ["unique(id)", "not_null(id, x)"] and m.error is None


# --------------------------------------------------------------------------- data tests and audits

def test_declarative_tests_catch_duplicates_nulls_ranges_and_values(tmp_path, con):
    root = tmp_path / "sql"
    write_model(root, "staging", "stg_d", """
        select * from (values (1, 3000.0, 'dwarf'), (1, 9000.0, 'giant'), (2, null, 'subgiant'))
            t(id, teff_k, cls)
    """, tests="unique(id); not_null(teff_k); range(teff_k, 2000, 5000); accepted(cls, 'dwarf', 'giant');"
               " range(id, 0, null)")
    go(con, root)
    res = {r.name: r for r in run_tests(con, Project.load(root, stages=None))}
    assert res["unique(id)"].rows == 1 and res["unique(id)"].sample[0][:2] == (1, 2)
    assert res["not_null(teff_k)"].rows == 1
    assert res["range(teff_k, 2000, 5000)"].rows == 1
    assert res["accepted(cls, 'dwarf', 'giant')"].rows == 1
    assert res["range(id, 0, null)"].passed


def test_audits_return_offending_rows(tree, con):
    go(con, tree)
    (tree / "audits").mkdir()
    (tree / "audits" / "snr_positive.sql").write_text(
        "-- description: no negative S/N\nselect * from lbl_c where snr2 < 0\n")
    (tree / "audits" / "few_rows.sql").write_text(
        "-- description: flags every row above the cut\n"
        "select * from xm_b where snr > getvariable('select.snr_i_min')\n")
    res = {r.name: r for r in run_tests(con, Project.load(tree, stages=None))}
    assert res["snr_positive"].passed and res["snr_positive"].kind == "audit"
    assert res["few_rows"].rows == 2 and not res["few_rows"].passed
    only_c = {r.name for r in run_tests(con, Project.load(tree, stages=None), select="lbl_c")}
    assert only_c == {"snr_positive"}


def test_tests_of_a_missing_relation_fail(tree, con):
    res = run_tests(con, Project.load(tree, stages=None))
    assert [r.model for r in res] == ["stg_a"] and "relation missing" in res[0].error


# --------------------------------------------------------------------------- python models

@pytest.fixture()
def stages_pkg(stage_package):
    """A throwaway stages package with one Python model reading xm_b, and a broken module."""
    stage_package("double", '''
        from mgold.pipeline.pymodel import python_model

        @python_model(name="spc_double", layer="spectra", columns={"id": "bigint", "snr2": "double"},
                      inputs={"b": "select id, snr * 2 as snr2 from xm_b"},
                      params=("spectra.dloglam",), description="twice the S/N", grain="one row per id",
                      tests="unique(id)")
        def build(ctx):
            yield ctx.table("b")
    ''')
    return stage_package("broken", "raise RuntimeError('half written')\n")


def test_python_models_join_the_same_dag(tree, con, stages_pkg):
    models = load_models(tree, stages=stages_pkg)
    py = models["spc_double"]
    assert py.is_python and py.depends_on == ("xm_b",) and py.layer == "spectra"
    assert "half written" in models[f"{stages_pkg}.broken"].error
    res = go(con, tree, DEFAULT, stages=stages_pkg)
    assert statuses(res)["spc_double"] == "built"
    assert [r.name for r in res].index("spc_double") > [r.name for r in res].index("xm_b")
    assert con.execute("select count(*) from spc_double").fetchone()[0] == 2
    again = statuses(go(con, tree, DEFAULT, stages=stages_pkg))
    assert again["spc_double"] == "fresh"
    changed = DEFAULT.with_overrides({"spectra.dloglam": 2e-4})
    assert statuses(go(con, tree, changed, stages=stages_pkg))["spc_double"] == "built"


def test_python_model_reading_truth_is_refused():
    from mgold.pipeline.pymodel import _REGISTRY, python_model

    @python_model(name="bad_truth", layer="labels", columns={"x": "bigint"},
                  inputs={"stars": "select star_id as x from truth.stars"})
    def build(ctx):  # pragma: no cover - never built
        yield from ()

    key = f"{__name__}:bad_truth"
    try:
        assert "truth.stars" in _REGISTRY[key].error
    finally:
        _REGISTRY.pop(key, None)


def test_layers_are_in_build_order():
    assert LAYERS[0] == "staging" and LAYERS[-1] == "marts" and LAYERS.index("labels") < LAYERS.index("clean")
