"""The shape of the code: modules flow one way, a command opens the warehouse once, a Python
model's hash covers the kernels it uses, and its config reads are checked."""

from __future__ import annotations

import ast
from pathlib import Path

import duckdb
import pytest

from mgold.pipeline import pymodel
from mgold.pipeline.config import DEFAULT
from mgold.pipeline.model import ModelError
from mgold.pipeline.runner import Project, build_models, run

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"mgold.pipeline": ROOT / "pipeline", "mgold.udfs": ROOT / "udfs"}

# import order: a module may import modules of its own rank or lower (udfs <- stages <- runner <- build <- cli)
RANKS = [
    ("mgold.udfs", 0),
    ("mgold.pipeline.config", 1), ("mgold.pipeline.errors", 1), ("mgold.pipeline.progress", 1),
    ("mgold.pipeline.model", 1), ("mgold.pipeline.sqlmodel", 1), ("mgold.pipeline.pymodel", 1),
    ("mgold.pipeline.datafiles", 1), ("mgold.pipeline.migrate", 1), ("mgold.pipeline.warehouse", 1),
    ("mgold.pipeline.stages", 2), ("mgold.pipeline.ingest", 2), ("mgold.pipeline.synth", 2),
    ("mgold.pipeline.runner", 3),
    ("mgold.pipeline.cli", 5),
]
FREE = ("mgold.pipeline.evaluate", "mgold.pipeline.bench")   # may import anything
DEFAULT_RANK = 4                                              # build, inspect, doctor, example, ...


def module_files() -> dict[str, Path]:
    out = {}
    for pkg, root in PACKAGES.items():
        for f in root.rglob("*.py"):
            rel = f.relative_to(root).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([pkg, *parts])] = f
    return out


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """mgold modules imported anywhere in the file (function-level imports included)."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m in known and m != name}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    files = module_files()
    return {n: imports_of(n, f, set(files)) for n, f in files.items()}


def _rank(module: str) -> int | None:
    if module.startswith(FREE):
        return None
    best = [(len(p), r) for p, r in RANKS if module == p or module.startswith(p + ".")]
    return max(best)[1] if best else DEFAULT_RANK


def test_imports_have_no_cycle(graph):
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):                                     # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_kernels_know_nothing_of_the_pipeline(graph):
    bad = {m: sorted(d for d in deps if d.startswith("mgold.pipeline")) for m, deps in graph.items()
           if m.startswith("mgold.udfs")}
    assert not {m: d for m, d in bad.items() if d}


def test_modules_import_only_downwards(graph):
    bad = [(m, d) for m, deps in graph.items() for d in deps
           if _rank(m) is not None and _rank(d) is not None and _rank(d) > _rank(m)]
    assert not bad, "imports against the flow udfs <- stages <- runner <- build <- cli: " + repr(sorted(bad))


def test_only_the_report_cli_imports_the_evaluation_code(graph):
    bad = [(m, d) for m, deps in graph.items() for d in deps
           if d.startswith("mgold.pipeline.evaluate") and not m.startswith("mgold.pipeline.evaluate")
           and m != "mgold.pipeline.cli.report"]
    assert not bad, f"production code importing evaluation (truth-reading) code: {bad}"


def test_the_import_walker_sees_lazy_and_relative_imports(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("def f():\n    from ..evaluate import labels\n    from . import warehouse\n")
    known = {"mgold.pipeline.evaluate", "mgold.pipeline.evaluate.labels", "mgold.pipeline.cli.warehouse"}
    assert imports_of("mgold.pipeline.cli.x", f, known) == known


# --------------------------------------------------------------------------- one connection per command

def test_a_build_opens_the_warehouse_once(tmp_path, monkeypatch):
    from mgold.pipeline.build import build, preset_config

    opened = []
    real = duckdb.connect

    def counting(database=":memory:", *a, **k):
        if str(database) not in (":memory:", ""):
            opened.append(str(database))
        return real(database, *a, **k)

    monkeypatch.setattr(duckdb, "connect", counting)
    wh = tmp_path / "w.duckdb"
    build(wh, preset="tiny", cfg=preset_config("tiny", sets=["synth.n_stars=300"]), until="spectra",
          echo=lambda _m: None)
    assert opened == [str(wh)], opened


# --------------------------------------------------------------------------- the Python-model contract

def _reload_stages() -> dict[str, str]:
    """Model hashes with the stage modules re-registered (as a fresh process would)."""
    import importlib

    import mgold.pipeline.stages.clean as c
    import mgold.pipeline.stages.spectra as s
    import mgold.pipeline.stages.suggest as g

    for mod in (s, c, g):                             # suggest imports clean: after it
        importlib.reload(mod)
    return {n: m.sha256 for n, m in Project.load().models.items()}


@pytest.fixture()
def edit_kernel(monkeypatch):
    """edit(module) -> model hashes as if that udfs module's file had been edited."""
    real = pymodel.module_source

    def edit(name: str) -> dict[str, str]:
        monkeypatch.setattr(pymodel, "module_source", lambda m: real(m) + (b"\n# edited\n" if m == name else b""))
        return _reload_stages()

    yield edit
    monkeypatch.undo()
    _reload_stages()                                  # the registry as the real files give it


def test_editing_a_kernel_makes_exactly_its_models_stale(edit_kernel):
    before = {n: m.sha256 for n, m in Project.load().models.items()}
    users = {n for n, m in Project.load().models.items() if "mgold.udfs.spectral_distance" in m.udf_modules}
    assert users == {"cln_dbscan", "cln_suggestions"}        # the suggestions compare with DBSCAN's distance
    after = edit_kernel("mgold.udfs.spectral_distance")
    assert {n for n in before if before[n] != after[n]} == users


def test_editing_a_shared_kernel_makes_each_of_its_users_stale(edit_kernel):
    before = {n: m.sha256 for n, m in Project.load().models.items()}
    after = edit_kernel("mgold.udfs.sed_recalibrate")
    assert {n for n in before if before[n] != after[n]} == {"spc_cluster_grid", "spc_red_grid", "cln_dbscan",
                                                            "cln_suggestions"}


@pytest.fixture()
def stage_pkg(stage_package):
    """write(source) -> the name of a throwaway stages package holding that one module."""
    return lambda source: stage_package("m", source)


TWO_MODELS = '''
    from mgold.pipeline.pymodel import python_model

    def helper_{h}(x):
        return x * {k}

    @python_model(name="spc_one", layer="spectra", columns={{"v": "double"}}, inputs={{"a": "select 1.0 v"}})
    def one(ctx):
        yield ctx.table("a")

    @python_model(name="spc_two", layer="spectra", columns={{"v": "double"}}, inputs={{"a": "select 2.0 v"}})
    def two(ctx):
        yield ctx.table("a").set_column(0, "v", [[helper_{h}(2.0)]])
'''


def test_editing_one_model_of_a_module_leaves_its_neighbour_fresh(stage_pkg):
    import importlib
    import sys

    pkg = stage_pkg(TWO_MODELS.format(h="a", k=2))
    first = {n: m.sha256 for n, m in Project.load(sql_root=Path("/nonexistent"), stages=pkg).models.items()}
    stage_pkg(TWO_MODELS.format(h="a", k=30))        # only the helper of spc_two changes
    sys.modules.pop(f"{pkg}.m", None)
    importlib.invalidate_caches()
    second = {n: m.sha256 for n, m in Project.load(sql_root=Path("/nonexistent"), stages=pkg).models.items()}
    assert first["spc_one"] == second["spc_one"] and first["spc_two"] != second["spc_two"]


def test_a_python_model_reading_an_undeclared_config_key_fails_loudly(stage_pkg):
    pkg = stage_pkg('''
        from mgold.pipeline.pymodel import python_model

        @python_model(name="spc_sneaky", layer="spectra", columns={"v": "double"}, params=("spectra.dloglam",))
        def build(ctx):
            ctx.cfg.spectra.dloglam                      # declared: fine
            ctx.cfg.clean.dbscan_eps                     # not declared
            yield from ()
    ''')
    project = Project.load(sql_root=Path("/nonexistent"), stages=pkg)
    con = duckdb.connect()
    with pytest.raises(ModelError, match="clean"):
        build_models(con, ["spc_sneaky"], DEFAULT, project)
    res = run(con, project, DEFAULT)
    assert res[0].status == "failed" and "clean" in res[0].error


def test_a_python_model_must_declare_its_columns_and_yield_them(stage_pkg):
    pkg = stage_pkg('''
        import pyarrow as pa
        from mgold.pipeline.pymodel import python_model

        @python_model(name="spc_nocols", layer="spectra", columns={})
        def a(ctx):
            yield from ()

        @python_model(name="spc_wrong", layer="spectra", columns={"v": "double", "w": "double"})
        def b(ctx):
            yield pa.table({"v": [1.0], "extra": [2.0]})
    ''')
    project = Project.load(sql_root=Path("/nonexistent"), stages=pkg)
    assert "declares no columns" in project.models["spc_nocols"].error
    with pytest.raises(ModelError, match="missing w; undeclared extra"):
        build_models(duckdb.connect(), ["spc_wrong"], DEFAULT, project)


def test_a_python_models_dependencies_come_from_its_input_sql():
    m = Project.load().models["cln_dbscan"]
    assert m.depends_on == ("cln_bins", "spc_cluster_grid")
    assert {"clean.dbscan_eps", "spectra.batch_spectra"} <= set(m.params)


def test_the_runner_owns_a_python_models_table(stage_pkg):
    pkg = stage_pkg('''
        import pyarrow as pa
        from mgold.pipeline.pymodel import python_model

        @python_model(name="spc_batches", layer="spectra", columns={"i": ("bigint", "row number"), "sq": "double"},
                      inputs={"r": "select range as i from range(10)"}, description="squares")
        def build(ctx):
            for rb in ctx.batches("r", 3):
                i = rb.column("i").to_numpy()
                yield pa.record_batch({"sq": (i * i).astype(float), "i": i})
    ''')
    con = duckdb.connect()
    res = run(con, Project.load(sql_root=Path("/nonexistent"), stages=pkg), DEFAULT)
    assert [r.status for r in res] == ["built"] and res[0].rows == 10
    assert con.execute("select sum(sq) from spc_batches").fetchone()[0] == sum(i * i for i in range(10))
    assert con.execute("select comment from duckdb_columns() where table_name = 'spc_batches' "
                       "and column_name = 'i'").fetchone()[0] == "row number"
    assert not con.execute("select table_name from duckdb_tables() where table_name like '%tmp%'").fetchall()


PARTITIONED = '''
    import pyarrow as pa
    from mgold.pipeline.pymodel import python_model

    @python_model(name="spc_parts", layer="spectra", columns={"catalog": "varchar", "v": "double"},
                  inputs={"v": "select {k} * length(getvariable('partition')) as v"},
                  partition_by="catalog", partitions="labels.dwarf_priority",
                  partition_token="select getvariable('partition') = 'ding22' and getvariable('clean.dbscan_eps') > 1")
    def build(ctx):
        yield pa.table({"catalog": [ctx.partition], "v": ctx.table("v")["v"]})
'''


def test_a_partitioned_model_rebuilds_only_its_stale_partitions_and_says_what_it_drops(stage_pkg):
    from mgold.pipeline.runner import model_states

    pkg = stage_pkg(PARTITIONED.replace("{k}", "1.0"))
    project = Project.load(sql_root=Path("/nonexistent"), stages=pkg)
    con = duckdb.connect()

    def go(cfg=DEFAULT):
        res = run(con, project, cfg)[0]
        built = {r[0] for r in con.execute(
            "select model from meta.model_runs where status = 'built' and model like 'spc_parts[%' and run_id = "
            "(select run_id from meta.runs order by started_at desc limit 1)").fetchall()}
        return res, built

    res, built = go()
    assert res.status == "built" and built == {"spc_parts[aspcap]", "spc_parts[ding22]", "spc_parts[laspm]"}
    assert con.execute("select count(*) from spc_parts").fetchone()[0] == 3
    res, _ = go()
    assert res.status == "fresh"
    fewer = DEFAULT.with_overrides({"labels.dwarf_priority": ["aspcap", "ding22"]})
    res, built = go(fewer)
    assert res.status == "built" and "dropped laspm (1 rows)" in res.reason and not built
    assert sorted(r[0] for r in con.execute("select catalog from spc_parts").fetchall()) == ["aspcap", "ding22"]
    res, built = go()                                      # back: only the missing partition is built
    assert built == {"spc_parts[laspm]"}
    token = DEFAULT.with_overrides({"clean.dbscan_eps": 2.0})
    assert {s.name: s.stale for s in model_states(con, project, token)}["spc_parts"]
    res, built = go(token)                                 # only ding22's own fingerprint changed
    assert built == {"spc_parts[ding22]"}


def test_model_hashes_are_the_same_in_every_process():
    """A hash that changed per process (freed constants' ids reused) rebuilt models on every build."""
    import subprocess
    import sys

    code = ("from mgold.pipeline.runner import Project\n"
            "print(sorted((n, m.sha256) for n, m in Project.load().models.items() if m.is_python))")
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            for _ in range(3)}
    assert len(runs) == 1
