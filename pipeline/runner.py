"""The versioned-SQL runner: bind the config, order the models, rebuild what is stale.

Models live in ``sql/<layer>/<name>.sql`` (and ``@python_model`` stages, see
``pipeline/sqlmodel.py``). ``run`` builds them in topological order, each under a
temporary name swapped in inside one transaction, and records every build in
``meta.model_runs`` so the next run rebuilds only what changed: the model's SQL or
module, a config value it uses, an upstream build, or a ``landing.*`` source.

Typical use from a unit test of one model::

    con = duckdb.connect(); bind_config(con, cfg)
    con.execute(f"create table x as {compile_model_sql(load_models()['lbl_offsets'])}")
"""

from __future__ import annotations

import datetime as dt
import hashlib
import heapq
import json
import re
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from .config import DEFAULT, Config
from .sqlmodel import (LAYERS, RUN_ID_VARIABLE, STAGES_PACKAGE, Model, ModelError, TestSpec,
                       compile_model_sql, load_audits, load_models, python_model)
from .warehouse import META_DDL, new_run_id

__all__ = [
    "LAYERS", "Model", "ModelError", "ModelResult", "ModelState", "TestResult", "python_model",
    "load_models", "compile_model_sql", "bind_config", "lineage", "closure", "topological_order",
    "select_models", "run", "run_tests", "compile_test", "model_states", "stale_reason",
    "ensure_meta", "relation_kind", "quote_ident",
]


# --------------------------------------------------------------------------- config binding

def _sql_type(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "BIGINT"
    if isinstance(value, float):
        return "DOUBLE"
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return "DOUBLE[]"
        return "VARCHAR[]"
    return "VARCHAR"


def _literal(value: Any) -> str:
    """A SQL literal whose cast to ``_sql_type(value)`` gives back ``value`` exactly."""
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    text = repr(value) if isinstance(value, float) else str(value)
    return "'" + text.replace("'", "''") + "'"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def bind_config(con: duckdb.DuckDBPyConnection, cfg: Config = DEFAULT,
                run_id: str | None = None) -> dict[str, Any]:
    """Bind every ``Config.flat()`` key as a typed DuckDB variable (DOUBLE for floats,
    BIGINT ints, VARCHAR strings, DOUBLE[]/VARCHAR[] tuples) plus ``run_id``.

    Returns the flat dict that was bound.
    """
    flat = cfg.flat()
    # one multi-statement call: ~200 separate `set variable` round trips cost ~0.3 s
    sets = [f"set variable {quote_ident(k)} = cast({_literal(v)} as {_sql_type(v)})"
            for k, v in flat.items()]
    sets.append(f"set variable {quote_ident(RUN_ID_VARIABLE)} = "
                f"cast({_literal(run_id or 'adhoc')} as VARCHAR)")
    con.execute(";\n".join(sets))
    return flat


# --------------------------------------------------------------------------- lineage and selection

def lineage(models: dict[str, Model]) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(upstream, downstream): direct edges between models (``landing.*`` sources are
    upstream entries too, never keys of downstream)."""
    up: dict[str, set[str]] = {n: set(m.depends_on) for n, m in models.items()}
    down: dict[str, set[str]] = {n: set() for n in models}
    for n, m in models.items():
        for d in m.upstream_models:
            if d in down:
                down[d].add(n)
    return up, down


def closure(start: Iterable[str], edges: dict[str, set[str]]) -> set[str]:
    """Every node reachable from ``start`` along ``edges`` (``start`` included)."""
    seen: set[str] = set()
    stack = list(start)
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        stack.extend(edges.get(n, ()))
    return seen


def _layer_rank(layer: str) -> int:
    return LAYERS.index(layer) if layer in LAYERS else -1


def topological_order(models: dict[str, Model]) -> tuple[list[str], set[str]]:
    """(order, names in a cycle): Kahn's algorithm, ties broken by layer then name."""
    up = {n: {d for d in m.upstream_models if d in models} for n, m in models.items()}
    _, down = lineage(models)
    indeg = {n: len(up[n]) for n in models}
    heap = [(_layer_rank(models[n].layer), n) for n, k in indeg.items() if k == 0]
    heapq.heapify(heap)
    order = []
    while heap:
        _, n = heapq.heappop(heap)
        order.append(n)
        for d in sorted(down[n]):
            indeg[d] -= 1
            if indeg[d] == 0:
                heapq.heappush(heap, (_layer_rank(models[d].layer), d))
    cyclic = set(models) - set(order)
    return order + sorted(cyclic, key=lambda n: (_layer_rank(models[n].layer), n)), cyclic


def select_models(models: dict[str, Model], select: str | None = None,
                  until_layer: str | None = None) -> set[str]:
    """Names chosen by ``select`` (space/comma separated: ``name``, ``name+``, ``+name``,
    ``+name+``, ``layer:<layer>``), cut at ``until_layer``. Unknown names raise ValueError."""
    up, down = lineage(models)
    if select is None or not select.strip():
        chosen = set(models)
    else:
        chosen = set()
        for token in re.split(r"[,\s]+", select.strip()):
            if not token:
                continue
            if token.startswith("layer:"):
                layer = token.split(":", 1)[1]
                if layer not in LAYERS:
                    raise ValueError(f"unknown layer {layer!r} in --select (layers: {', '.join(LAYERS)})")
                chosen |= {n for n, m in models.items() if m.layer == layer}
                continue
            name = token.strip("+")
            if name not in models:
                import difflib
                near = difflib.get_close_matches(name, list(models), n=3)
                hint = f" (did you mean {', '.join(near)}?)" if near else ""
                raise ValueError(f"unknown model {name!r} in --select{hint}")
            chosen.add(name)
            if token.startswith("+"):
                chosen |= {n for n in closure([name], up) if n in models}
            if token.endswith("+"):
                chosen |= closure([name], down)
    if until_layer is not None:
        if until_layer not in LAYERS:
            raise ValueError(f"unknown layer {until_layer!r} (layers: {', '.join(LAYERS)})")
        limit = LAYERS.index(until_layer)
        chosen = {n for n in chosen if _layer_rank(models[n].layer) <= limit}
    return chosen


# --------------------------------------------------------------------------- ledger and staleness

@dataclass
class ModelResult:
    name: str
    layer: str
    status: str                 # built | fresh | failed | skipped
    rows: int | None = None
    seconds: float = 0.0
    error: str | None = None
    reason: str | None = None   # why it was rebuilt, or why it was skipped


@dataclass
class ModelState:
    """What ``mgold sql status`` shows for one model."""

    name: str
    layer: str
    kind: str
    last_status: str | None
    rows: int | None
    last_run: dt.datetime | None
    run_id: str | None
    stale: bool
    reason: str | None
    error: str | None


def ensure_meta(con: duckdb.DuckDBPyConnection) -> None:
    """meta.* tables (idempotent), so ``run`` works on a bare connection too."""
    for schema in ("meta", "landing"):
        con.execute(f"create schema if not exists {schema}")
    for ddl in META_DDL:
        con.execute(ddl)


def relation_kind(con: duckdb.DuckDBPyConnection, name: str, schema: str = "main") -> str | None:
    """'table', 'view' or None for ``schema.name`` in the current database."""
    row = con.execute(
        "select table_type from information_schema.tables "
        "where table_catalog = current_database() and table_schema = ? and table_name = ?",
        [schema, name]).fetchone()
    if row is None:
        return None
    return "view" if row[0] == "VIEW" else "table"


class _Ledger:
    """The latest build of every model, read once from meta.model_runs and kept
    current as this run builds."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con
        cols = ["model", "kind", "sql_sha256", "upstream_hashes", "config_hash", "run_id",
                "started_at", "finished_at", "row_count", "status", "error"]
        q = ("select {c} from meta.model_runs {w} "
             "qualify row_number() over (partition by model order by finished_at desc) = 1")
        self.built = {r[0]: dict(zip(cols, r)) for r in con.execute(
            q.format(c=", ".join(cols), w="where status = 'built'")).fetchall()}
        self.last = {r[0]: dict(zip(cols, r)) for r in con.execute(
            q.format(c=", ".join(cols), w="")).fetchall()}
        self._sources: dict[str, str] = {}

    def token(self, name: str) -> str | None:
        """Identity of an upstream: a model's latest build, or a landing fingerprint."""
        if "." in name:
            return self.source_fingerprint(name)
        row = self.built.get(name)
        return f"{row['run_id']}:{row['sql_sha256']}" if row else None

    def source_fingerprint(self, source: str) -> str:
        """sha256 of the ingested files feeding ``landing.<table>`` plus its row count."""
        if source not in self._sources:
            schema, table = source.split(".", 1)
            shas = [r[0] for r in self.con.execute(
                "select file_sha256 from meta.ingested_files "
                "where ? = kind or starts_with(?, kind || '_') order by 1", [table, table]).fetchall()]
            rows = None
            if relation_kind(self.con, table, schema):
                rows = self.con.execute(
                    f"select count(*) from {quote_ident(schema)}.{quote_ident(table)}").fetchone()[0]
            payload = json.dumps([shas, rows])
            self._sources[source] = hashlib.sha256(payload.encode()).hexdigest()
        return self._sources[source]

    def record(self, m: Model, status: str, run_id: str, started: dt.datetime,
               upstream: dict[str, str | None], config_hash: str | None, rows: int | None,
               error: str | None) -> None:
        finished = dt.datetime.now()
        row = dict(model=m.name, kind=m.kind, sql_sha256=m.sha256,
                   upstream_hashes=json.dumps(upstream, sort_keys=True), config_hash=config_hash,
                   run_id=run_id, started_at=started, finished_at=finished, row_count=rows,
                   status=status, error=error)
        cols = list(row)
        self.con.execute(f"insert into meta.model_runs ({', '.join(cols)}) "
                         f"values ({', '.join('?' * len(cols))})", list(row.values()))
        self.last[m.name] = row
        if status == "built":
            self.built[m.name] = row


def _config_hash(cfg: Config, m: Model) -> str | None:
    try:
        return cfg.hash_of(m.params)
    except KeyError:
        return None


def _changed_keys(con: duckdb.DuckDBPyConnection, cfg: Config, m: Model, run_id: str) -> list[str]:
    """Which used keys differ from the values recorded for the run that last built ``m``."""
    old = dict(con.execute("select key, value from meta.run_parameters where run_id = ?",
                           [run_id]).fetchall())
    flat = cfg.flat()
    return [k for k in m.params if old.get(k) != json.dumps(flat.get(k))]


def stale_reason(con: duckdb.DuckDBPyConnection, cfg: Config, m: Model, ledger: _Ledger,
                 full_refresh: bool = False) -> str | None:
    """Why ``m`` must be rebuilt, or None when it is fresh."""
    last = ledger.built.get(m.name)
    if full_refresh:
        return "full refresh"
    if last is None:
        return "never built"
    if relation_kind(con, m.name) is None:
        return "relation missing"
    if last["sql_sha256"] != m.sha256:
        return "module changed" if m.is_python else "SQL changed"
    if last["config_hash"] != _config_hash(cfg, m):
        keys = _changed_keys(con, cfg, m, last["run_id"])
        return "config changed" + (f": {', '.join(keys)}" if keys else "")
    recorded = json.loads(last["upstream_hashes"] or "{}")
    for d in m.depends_on:
        if recorded.get(d) != ledger.token(d):
            return f"{d} changed" if "." in d else f"upstream {d} rebuilt"
    return None


def _git_rev() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


# --------------------------------------------------------------------------- building

def _build_one(con: duckdb.DuckDBPyConnection, m: Model, cfg: Config, run_tag: str) -> int | None:
    """Create ``m`` atomically; returns its row count (None for SQL views)."""
    for source in m.sources:
        if relation_kind(con, *reversed(source.split(".", 1))) is None:
            raise ModelError(f"{source} is missing: ingest it first (mgold ingest ...)")
    target = quote_ident(m.name)
    existing = relation_kind(con, m.name)
    if m.kind == "view" and not m.is_python:
        sql = compile_model_sql(m)
        con.execute("begin")
        try:
            if existing == "table":
                con.execute(f"drop table {target}")
            con.execute(f"create or replace view {target} as {sql}")
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
        return None
    tmp_name = f"{m.name}__tmp_{run_tag}"
    tmp = quote_ident(tmp_name)
    _drop(con, tmp_name)
    try:
        if m.is_python:
            if m.error:
                raise ModelError(m.error)
            m.fn(con, cfg, tmp_name)
            made = relation_kind(con, tmp_name)
            if made is None:
                raise ModelError(f"{m.name}: build() did not create relation {tmp_name!r}")
        else:
            con.execute(f"create table {tmp} as {compile_model_sql(m)}")
            made = "table"
        rows = con.execute(f"select count(*) from {tmp}").fetchone()[0]
        con.execute("begin")
        try:
            if existing:
                con.execute(f"drop {existing} {target}")
            con.execute(f"alter {made} {tmp} rename to {target}")
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
        return rows
    except BaseException:
        try:
            con.execute("rollback")   # a Python stage may have left its own transaction open
        except duckdb.Error:
            pass
        _drop(con, tmp_name)
        raise


def _drop(con: duckdb.DuckDBPyConnection, name: str) -> None:
    kind = relation_kind(con, name)
    if kind:
        con.execute(f"drop {kind} {quote_ident(name)}")


def _start_run(con, cfg: Config, run_id: str, command: str) -> bool:
    """Write meta.runs / meta.run_parameters unless the caller already owns the run row."""
    owned = con.execute("select count(*) from meta.runs where run_id = ?", [run_id]).fetchone()[0] == 0
    if owned:
        con.execute("insert into meta.runs values (?, ?, ?, null, 'running', ?, ?)",
                    [run_id, command, dt.datetime.now(), _git_rev(),
                     json.dumps(cfg.flat(), sort_keys=True)])
    if not con.execute("select count(*) from meta.run_parameters where run_id = ?",
                       [run_id]).fetchone()[0]:
        flat = sorted(cfg.flat().items())
        con.execute("insert into meta.run_parameters select ?, unnest(?::varchar[]), "
                    "unnest(?::varchar[])", [run_id, [k for k, _ in flat],
                                             [json.dumps(v) for _, v in flat]])
    return owned


def run(con: duckdb.DuckDBPyConnection, cfg: Config = DEFAULT, select: str | None = None,
        full_refresh: bool = False, until_layer: str | None = None,
        on_event: Callable[[ModelResult], None] | None = None, run_id: str | None = None,
        sql_root: str | Path | None = None, stages: str | None = STAGES_PACKAGE,
        command: str = "sql run", models: dict[str, Model] | None = None) -> list[ModelResult]:
    """Build the selected models that are stale, in topological order.

    A failed model keeps its previous relation, is recorded as failed in
    meta.model_runs, and its downstream models are skipped; run() still returns
    normally (the caller decides the exit status). ``stages`` is the package of
    Python models (None: SQL models only); ``models`` skips loading altogether.
    ``on_event(result)`` is called after each model, fresh and skipped ones included.
    """
    if models is None:
        models = load_models(sql_root, stages)
    chosen = select_models(models, select, until_layer)
    order, cyclic = topological_order(models)
    ensure_meta(con)
    run_id = run_id or new_run_id()
    run_tag = re.sub(r"\W", "_", run_id)
    bind_config(con, cfg, run_id)
    owned = _start_run(con, cfg, run_id, command)
    ledger = _Ledger(con)
    results: list[ModelResult] = []
    broken: dict[str, str] = {}     # model -> status ('failed' / 'skipped') in this run
    for name in order:
        if name not in chosen:
            continue
        m = models[name]
        started = dt.datetime.now()
        t0 = time.perf_counter()
        upstream = {d: ledger.token(d) for d in m.depends_on}
        bad_up = [d for d in m.upstream_models if d in broken]
        if m.error or name in cyclic:
            err = m.error or f"{name}: dependency cycle through {', '.join(sorted(cyclic))}"
            res = ModelResult(name, m.layer, "failed", error=err, reason="broken model")
            ledger.record(m, "failed", run_id, started, upstream, None, None, err)
            broken[name] = "failed"
        elif bad_up:
            res = ModelResult(name, m.layer, "skipped", reason=f"upstream {bad_up[0]} {broken[bad_up[0]]}")
            ledger.record(m, "skipped", run_id, started, upstream, None, None, res.reason)
            broken[name] = "skipped"
        else:
            reason = stale_reason(con, cfg, m, ledger, full_refresh)
            if reason is None:
                last = ledger.built[name]
                res = ModelResult(name, m.layer, "fresh", rows=last["row_count"])
            else:
                chash = _config_hash(cfg, m)
                try:
                    rows = _build_one(con, m, cfg, run_tag)
                    res = ModelResult(name, m.layer, "built", rows=rows, reason=reason,
                                      seconds=time.perf_counter() - t0)
                    ledger.record(m, "built", run_id, started, upstream, chash, rows, None)
                except Exception as e:  # noqa: BLE001 - any failure of one model is reported
                    err = str(e) if str(e).startswith(name) else f"{name}: {e}"
                    res = ModelResult(name, m.layer, "failed", error=err, reason=reason,
                                      seconds=time.perf_counter() - t0)
                    ledger.record(m, "failed", run_id, started, upstream, chash, None, err)
                    broken[name] = "failed"
        res.seconds = res.seconds or time.perf_counter() - t0
        results.append(res)
        if on_event is not None:
            on_event(res)
    if owned:
        status = "failed" if any(r.status == "failed" for r in results) else "ok"
        con.execute("update meta.runs set finished_at = ?, status = ? where run_id = ?",
                    [dt.datetime.now(), status, run_id])
    return results


def model_states(con: duckdb.DuckDBPyConnection, cfg: Config = DEFAULT,
                 models: dict[str, Model] | None = None,
                 sql_root: str | Path | None = None,
                 stages: str | None = STAGES_PACKAGE) -> list[ModelState]:
    """Every model with its last build and whether (and why) it is stale now.
    A model is also stale when one of its upstream models is."""
    if models is None:
        models = load_models(sql_root, stages)
    order, cyclic = topological_order(models)
    has_meta = relation_kind(con, "model_runs", "meta") is not None
    ledger = _Ledger(con) if has_meta else None
    states: dict[str, ModelState] = {}
    for name in order:
        m = models[name]
        last = ledger.last.get(name, {}) if ledger else {}
        built = ledger.built.get(name, {}) if ledger else {}
        if m.error or name in cyclic:
            reason = "broken: " + (m.error or "dependency cycle")
        elif ledger is None:
            reason = "never built"
        else:
            reason = stale_reason(con, cfg, m, ledger)
            if reason is None:
                stale_up = [d for d in m.upstream_models if d in states and states[d].stale]
                reason = f"upstream {stale_up[0]} stale" if stale_up else None
        states[name] = ModelState(
            name=name, layer=m.layer, kind=m.kind, last_status=last.get("status"),
            rows=built.get("row_count"), last_run=last.get("finished_at"),
            run_id=last.get("run_id"), stale=reason is not None, reason=reason, error=m.error)
    return [states[n] for n in order]


# --------------------------------------------------------------------------- data tests

@dataclass
class TestResult:
    name: str                   # e.g. "unique(source_id)" or the audit's file stem
    model: str | None           # the model tested (None for audits)
    kind: str                   # "test" | "audit"
    sql: str
    rows: int = 0               # offending rows
    sample: list[tuple] | None = None
    columns: list[str] | None = None
    error: str | None = None
    description: str = ""

    __test__ = False            # not a pytest class

    @property
    def passed(self) -> bool:
        return self.error is None and self.rows == 0


def compile_test(model: str, spec: TestSpec) -> str:
    """A declarative header test as SQL returning the offending rows."""
    rel = quote_ident(model)
    a = spec.args
    if spec.kind == "unique":
        cols = ", ".join(a)
        return f"select {cols}, count(*) as n_rows from {rel} group by {cols} having count(*) > 1"
    if spec.kind == "not_null":
        return f"select * from {rel} where " + " or ".join(f"{c} is null" for c in a)
    if spec.kind == "range":
        col, lo, hi = a
        conds = [f"{col} < {lo}" for _ in [0] if lo.lower() not in ("null", "none", "")]
        conds += [f"{col} > {hi}" for _ in [0] if hi.lower() not in ("null", "none", "")]
        return f"select * from {rel} where " + (" or ".join(conds) or "false")
    if spec.kind == "accepted":
        col, values = a[0], ", ".join(a[1:])
        return f"select * from {rel} where {col} is not null and {col} not in ({values})"
    raise ModelError(f"unknown test {spec.kind!r}")


def _execute_check(con: duckdb.DuckDBPyConnection, res: TestResult, sample_rows: int) -> TestResult:
    try:
        res.rows = con.execute(f"select count(*) from ({res.sql})").fetchone()[0]
        if res.rows:
            cur = con.execute(f"select * from ({res.sql}) limit {int(sample_rows)}")
            res.columns = [d[0] for d in cur.description]
            res.sample = cur.fetchall()
    except duckdb.Error as e:
        res.error = str(e).splitlines()[0]
    return res


def run_tests(con: duckdb.DuckDBPyConnection, select: str | None = None,
              cfg: Config | None = None, sql_root: str | Path | None = None,
              stages: str | None = STAGES_PACKAGE, models: dict[str, Model] | None = None,
              sample_rows: int = 5) -> list[TestResult]:
    """Run the header tests of the selected models and every audit (``sql/audits/*.sql``)
    touching them (all audits when ``select`` is None). A check passes when it returns
    no rows; a check that cannot run (missing relation, bad SQL) fails with ``error``."""
    if models is None:
        models = load_models(sql_root, stages)
    chosen = select_models(models, select)
    bind_config(con, cfg or DEFAULT)
    order, _ = topological_order(models)
    results: list[TestResult] = []
    for name in order:
        if name not in chosen:
            continue
        m = models[name]
        if m.error:
            results.append(TestResult("model", name, "test", "", error=m.error))
            continue
        if m.tests and relation_kind(con, name) is None:
            results.append(TestResult("exists", name, "test", "",
                                      error=f"{name}: relation missing; run `mgold sql run` first"))
            continue
        for spec in m.tests:
            results.append(_execute_check(con, TestResult(str(spec), name, "test",
                                                          compile_test(name, spec)), sample_rows))
    for audit in load_audits(sql_root):
        if select and not (set(audit.depends_on) & chosen):
            continue
        res = TestResult(audit.name, None, "audit", audit.sql, description=audit.description,
                         error=audit.error)
        results.append(res if audit.error else _execute_check(con, res, sample_rows))
    return results
