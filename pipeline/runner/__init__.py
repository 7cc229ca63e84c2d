"""The versioned-model runner: order the models, rebuild what is stale, record it.

Modules: ``project`` (models and audits loaded once), ``dag`` (lineage, order,
``--select``), ``ledger`` (meta.* and staleness), ``materialise`` (config binding,
building one model atomically), ``checks`` (data tests). ``run`` builds the stale
models of a Project in topological order, each swapped in atomically, and records
every build in ``meta.model_runs`` so the next run rebuilds only what changed: the
model's SQL or code (kernels included), a config value it uses, an upstream build,
or a ``landing.*`` source.

Typical use from a unit test of a few models on literal rows (SQL or Python models,
without the ledger)::

    con = duckdb.connect(); bind_config(con, cfg)
    con.execute("create table lbl_labelled_sample as ...")
    build_models(con, ["cln_bins", "cln_dbscan"], cfg)
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import duckdb

from ..config import DEFAULT, Config
from ..model import LAYERS, Model, ModelError
from ..pymodel import python_model
from ..sqlmodel import compile_model_sql
from ..warehouse import finish_run, new_run_id, quote_ident, relation_kind, start_run, transaction
from .checks import TestResult, compile_test, run_tests
from .dag import closure, lineage, select_models, topological_order
from .ledger import (Ledger, config_hash, ensure_meta, partition_config_hash, partition_key, partition_plan,
                     recorded_config, stale_reason)
from .materialise import bind_config, build_one, build_partition, drop_partition
from .project import Project, load_models

__all__ = [
    "LAYERS", "Model", "ModelError", "ModelResult", "ModelState", "TestResult", "Project", "python_model",
    "load_models", "compile_model_sql", "bind_config", "lineage", "closure", "topological_order",
    "select_models", "run", "run_tests", "compile_test", "model_states", "stale_reason", "ensure_meta",
    "relation_kind", "quote_ident", "recorded_config", "transaction", "build_models",
]


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


def run(con: duckdb.DuckDBPyConnection, project: Project, cfg: Config = DEFAULT, select: str | None = None,
        full_refresh: bool = False, until_layer: str | None = None,
        on_event: Callable[[ModelResult], None] | None = None, run_id: str | None = None,
        command: str = "sql run", skip_unbuildable: bool = False) -> list[ModelResult]:
    """Build the selected models of ``project`` that are stale, in topological order.

    A failed model keeps its previous relation, is recorded as failed in
    meta.model_runs, and its downstream models are skipped; run() still returns
    normally (the caller decides the exit status). ``on_event(result)`` is called
    after each model, fresh and skipped ones included. ``skip_unbuildable``: a selected model
    whose upstream model is neither selected nor built is skipped (saying which), not failed
    (``mgold laspm run`` on a warehouse of ingested spectra alone).
    """
    models = project.models
    chosen = select_models(models, select, until_layer)
    ensure_meta(con)
    run_id = run_id or new_run_id()
    bind_config(con, cfg, run_id)
    owned = start_run(con, cfg, run_id, command)
    ledger = Ledger(con)
    results: list[ModelResult] = []
    broken: dict[str, str] = {}     # model -> status ('failed' / 'skipped') in this run
    for name in project.order:
        if name not in chosen:
            continue
        m = models[name]
        started = dt.datetime.now()
        t0 = time.perf_counter()
        upstream = {d: ledger.token(d) for d in m.depends_on}
        bad_up = [d for d in m.upstream_models if d in broken and d not in m.token_only]
        missing_up = [d for d in m.upstream_models if d not in m.token_only and d not in chosen
                      and relation_kind(con, d) is None] if skip_unbuildable else []
        if m.error or name in project.cyclic:
            err = m.error or f"{name}: dependency cycle through {', '.join(sorted(project.cyclic))}"
            res = ModelResult(name, m.layer, "failed", error=err, reason="broken model")
            ledger.record(m, "failed", run_id, started, upstream, None, None, err)
            broken[name] = "failed"
        elif bad_up or missing_up:
            why = f"upstream {bad_up[0]} {broken[bad_up[0]]}" if bad_up else f"needs {missing_up[0]}, not built"
            res = ModelResult(name, m.layer, "skipped", reason=why)
            ledger.record(m, "skipped", run_id, started, upstream, None, None, res.reason)
            broken[name] = "skipped"
        elif m.is_partitioned:
            res = _run_partitioned(con, cfg, m, ledger, run_id, started, upstream, full_refresh)
            if res.status == "failed":
                broken[name] = "failed"
        else:
            reason = stale_reason(con, cfg, m, ledger, full_refresh)
            if reason is None:
                res = ModelResult(name, m.layer, "fresh", rows=ledger.built[name]["row_count"])
            else:
                chash = config_hash(cfg, m)
                try:
                    rows = build_one(con, m, cfg, run_id)
                    res = ModelResult(name, m.layer, "built", rows=rows, reason=reason,
                                      seconds=time.perf_counter() - t0)
                    ledger.record(m, "built", run_id, started, upstream, chash, rows, None)
                except (KeyboardInterrupt, SystemExit):
                    raise
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
        finish_run(con, run_id, "failed" if any(r.status == "failed" for r in results) else "ok")
    return results


def _run_partitioned(con, cfg: Config, m: Model, ledger: Ledger, run_id: str, started,
                     upstream: dict, full_refresh: bool) -> ModelResult:
    """Build the stale partitions of ``m`` one by one (each swapped in on its own), drop the partitions
    no longer configured, and record the model when anything changed (its downstream then rebuilds)."""
    t0 = time.perf_counter()
    stale, dropped = partition_plan(con, cfg, m, ledger, full_refresh)
    chash = partition_config_hash(cfg, m)
    done, notes = [], []
    for p, reason, token in stale:
        key = replace(m, name=partition_key(m, p))
        up = {**upstream, "_partition": token}
        try:
            rows = build_partition(con, m, cfg, run_id, p)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:  # noqa: BLE001 - a failed partition keeps its previous rows
            err = str(e) if str(e).startswith(m.name) else f"{m.name}[{p}]: {e}"
            ledger.record(key, "failed", run_id, started, up, chash, None, err)
            return ModelResult(m.name, m.layer, "failed", error=err, reason=reason,
                               seconds=time.perf_counter() - t0)
        ledger.record(key, "built", run_id, started, up, chash, rows, None)
        done.append(p)
        notes.append(f"{p}: {reason}")
    for p in dropped:
        with transaction(con):
            n = drop_partition(con, m, p)
        notes.append(f"dropped {p} ({n:,d} rows): not in {m.partitions}")
    total = con.execute(f"select count(*) from {quote_ident(m.name)}").fetchone()[0] \
        if relation_kind(con, m.name) else 0
    if not done and not dropped and m.name in ledger.built and relation_kind(con, m.name):
        return ModelResult(m.name, m.layer, "fresh", rows=ledger.built[m.name]["row_count"])
    ledger.record(m, "built", run_id, started, {**upstream, "_partitions": ",".join(done)}, chash, total, None)
    return ModelResult(m.name, m.layer, "built", rows=total, reason="; ".join(notes) or "recorded",
                       seconds=time.perf_counter() - t0)


def build_models(con: duckdb.DuckDBPyConnection, names: list[str], cfg: Config = DEFAULT,
                 project: Project | None = None) -> dict[str, int | None]:
    """Build the named models in the given order, as the runner would, but without staleness or
    ledger (unit tests, notebooks); returns rows per model. A broken model raises ModelError."""
    project = project or Project.load()
    bind_config(con, cfg)
    out: dict[str, int | None] = {}
    for n in names:
        m = project.models[n]
        if m.is_partitioned:
            out[n] = sum(build_partition(con, m, cfg, "adhoc", p) for p in cfg.flat()[m.partitions])
        else:
            out[n] = build_one(con, m, cfg, "adhoc")
    return out


def model_states(con: duckdb.DuckDBPyConnection, project: Project, cfg: Config = DEFAULT) -> list[ModelState]:
    """Every model with its last build and whether (and why) it is stale now.
    A model is also stale when one of its upstream models is."""
    models = project.models
    ledger = Ledger(con) if relation_kind(con, "model_runs", "meta") is not None else None
    states: dict[str, ModelState] = {}
    for name in project.order:
        m = models[name]
        last = ledger.last.get(name, {}) if ledger else {}
        built = ledger.built.get(name, {}) if ledger else {}
        if m.error or name in project.cyclic:
            reason = "broken: " + (m.error or "dependency cycle")
        elif ledger is None:
            reason = "never built"
        elif m.is_partitioned:
            stale, dropped = partition_plan(con, cfg, m, ledger)
            reason = (f"partition {stale[0][0]}: {stale[0][1]}" if stale
                      else f"partition {dropped[0]} to drop" if dropped else None)
        else:
            reason = stale_reason(con, cfg, m, ledger)
            if reason is None:
                stale_up = [d for d in m.upstream_models if d in states and states[d].stale]
                reason = f"upstream {stale_up[0]} stale" if stale_up else None
        states[name] = ModelState(
            name=name, layer=m.layer, kind=m.kind, last_status=last.get("status"),
            rows=built.get("row_count"), last_run=last.get("finished_at"),
            run_id=last.get("run_id"), stale=reason is not None, reason=reason, error=m.error)
    return [states[n] for n in project.order]
