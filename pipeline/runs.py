"""Plain functions behind ``mgold runs``: every run recorded in ``meta.runs``, what it used and built.

A run is one row of ``meta.runs`` (a build, a ``sql run``, an ingest): its config values are in
``meta.run_parameters``, the models it built (or failed, or skipped) in ``meta.model_runs``. A
model that was fresh is not written again, so the *state* of the warehouse after a run is, per
model, the latest successful build by that run or an earlier one (``models_as_of``); ``diff``
compares two such states. Headline figures are the row counts of ``HEADLINE_MODELS`` in that state.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from .errors import MgoldError

# the models whose size says what a run produced (a later stage adds its own)
HEADLINE_MODELS = ("sel_primary", "lbl_labelled_sample", "cln_kept")


class RunError(MgoldError):
    """A run reference that names no run, or more than one."""


@dataclass(frozen=True)
class Run:
    run_id: str
    command: str | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    status: str | None
    git_rev: str | None
    n_built: int = 0
    n_failed: int = 0        # failed or skipped because an upstream failed


@dataclass(frozen=True)
class ModelState:
    model: str
    kind: str | None
    sql_sha256: str | None
    config_hash: str | None
    upstream_hashes: str | None
    row_count: int | None
    run_id: str              # the run that built it
    finished_at: dt.datetime | None


@dataclass(frozen=True)
class RunDetail:
    run: Run
    parameters: dict[str, str]                 # key -> JSON value
    models: dict[str, ModelState]              # state of the warehouse after the run
    outcomes: list[tuple[str, str, str | None]]   # (model, status, error) of what this run touched
    headline: dict[str, int | None]            # HEADLINE_MODELS -> rows after the run


@dataclass(frozen=True)
class ModelChange:
    model: str
    change: str              # 'added', 'removed', 'sql changed', 'config changed', 'upstream rebuilt'
    sha_a: str | None
    sha_b: str | None
    rows_a: int | None
    rows_b: int | None


@dataclass(frozen=True)
class RunDiff:
    a: Run
    b: Run
    parameters: list[tuple[str, str | None, str | None]] = field(default_factory=list)   # (key, value a, value b)
    models: list[ModelChange] = field(default_factory=list)
    headline: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)


def _has_ledger(con) -> bool:
    n = con.execute("select count(*) from information_schema.tables where table_schema = 'meta' "
                    "and table_name in ('runs', 'run_parameters', 'model_runs')").fetchone()[0]
    return n == 3


def list_runs(con) -> list[Run]:
    """Every run, oldest first, with how many models it built and how many failed or were skipped."""
    if not _has_ledger(con):
        return []
    rows = con.execute("""
        select r.run_id, r.command, r.started_at, r.finished_at, r.status, r.git_rev,
               count(m.model) filter (where m.status = 'built'),
               count(m.model) filter (where m.status in ('failed', 'skipped'))
        from meta.runs r left join meta.model_runs m using (run_id)
        group by all order by r.started_at nulls first, r.run_id""").fetchall()
    return [Run(*r) for r in rows]


def resolve(con, ref: str) -> Run:
    """The run ``ref`` names: a full run id, a unique prefix of one, 'latest' or 'previous'
    (the last and next-to-last runs that built a model)."""
    runs = list_runs(con)
    if not runs:
        raise RunError("no runs recorded in meta.runs (nothing was built here yet)")
    if ref in ("latest", "previous"):
        building = [r for r in runs if r.n_built or r.n_failed]
        k = 1 if ref == "latest" else 2
        if len(building) < k:
            raise RunError(f"no {ref} run: {len(building)} run(s) built models")
        return building[-k]
    exact = [r for r in runs if r.run_id == ref]
    hits = exact or [r for r in runs if r.run_id.startswith(ref)]
    if not hits:
        raise RunError(f"no run {ref!r} in meta.runs (see `mgold runs list`)")
    if len(hits) > 1:
        raise RunError(f"run {ref!r} is ambiguous: {', '.join(r.run_id for r in hits[:5])}"
                       + (", ..." if len(hits) > 5 else ""))
    return hits[0]


def parameters(con, run_id: str) -> dict[str, str]:
    """The config values a run used, ``{key: JSON value}``."""
    return dict(con.execute("select key, value from meta.run_parameters where run_id = ? order by key",
                            [run_id]).fetchall())


def models_as_of(con, run: Run) -> dict[str, ModelState]:
    """Per model, its latest successful build by ``run`` or a run that started before it."""
    rows = con.execute("""
        select m.model, m.kind, m.sql_sha256, m.config_hash, m.upstream_hashes, m.row_count, m.run_id, m.finished_at
        from meta.model_runs m join meta.runs r using (run_id)
        where m.status = 'built' and (r.run_id = ? or r.started_at < ?)
        qualify row_number() over (partition by m.model order by m.finished_at desc) = 1
        order by m.model""", [run.run_id, run.started_at]).fetchall()
    return {r[0]: ModelState(*r) for r in rows}


def show(con, ref: str) -> RunDetail:
    """One run: its parameters, the models it touched and the warehouse's models after it."""
    run = resolve(con, ref)
    models = models_as_of(con, run)
    outcomes = con.execute("select model, status, error from meta.model_runs where run_id = ? "
                           "order by started_at, model", [run.run_id]).fetchall()
    return RunDetail(run, parameters(con, run.run_id), models, [tuple(o) for o in outcomes],
                     {m: models[m].row_count if m in models else None for m in HEADLINE_MODELS})


def _change(a: ModelState | None, b: ModelState | None) -> str | None:
    if a is None:
        return "added"
    if b is None:
        return "removed"
    if a.sql_sha256 != b.sql_sha256:
        return "sql changed"
    if a.config_hash != b.config_hash:
        return "config changed"
    if a.run_id != b.run_id:
        return "upstream rebuilt" if a.upstream_hashes != b.upstream_hashes else "rebuilt"
    return None


def diff(con, ref_a: str, ref_b: str) -> RunDiff:
    """What changed from run A to run B: config values, and every model whose state differs
    (built again, with another SQL hash, config or upstream), with both row counts."""
    a, b = resolve(con, ref_a), resolve(con, ref_b)
    pa, pb = parameters(con, a.run_id), parameters(con, b.run_id)
    params = [(k, pa.get(k), pb.get(k)) for k in sorted(set(pa) | set(pb)) if pa.get(k) != pb.get(k)]
    ma, mb = models_as_of(con, a), models_as_of(con, b)
    changes = []
    for name in sorted(set(ma) | set(mb)):
        x, y = ma.get(name), mb.get(name)
        what = _change(x, y)
        if what is None and (x.row_count != y.row_count):
            what = "rows changed"
        if what is not None:
            changes.append(ModelChange(name, what, x and x.sql_sha256, y and y.sql_sha256,
                                       x and x.row_count, y and y.row_count))
    headline = {m: (ma[m].row_count if m in ma else None, mb[m].row_count if m in mb else None)
                for m in HEADLINE_MODELS}
    return RunDiff(a, b, params, changes, headline)


def short_value(value: str | None, width: int = 60) -> str:
    """A JSON parameter value for one table cell ('-' when the run did not record it)."""
    if value is None:
        return "-"
    try:
        text = json.dumps(json.loads(value))
    except (TypeError, ValueError):
        text = value
    return text if len(text) <= width else text[: width - 3] + "..."
