"""Checks of a warehouse's health (``mgold doctor``, and the warnings of ``mgold sql status``).

``diagnose(con, project, warehouse)`` runs every check on a read-only connection and returns the
problems, each one line saying what is wrong and the command that fixes it:

- schema: ``meta.schema_version`` older than this mgold (``mgold migrate``);
- ledger vs tables: every model the ledger (``meta.model_runs``) says built exists with the row
  count it recorded (partitions too), its last build did not fail, its status is one mgold writes;
- relations in ``main`` that no model and no ledger row explains (a killed build's temporary
  table, something written by hand);
- data files: every ``meta.data_files`` row names a file that exists with the recorded size and
  sha256, and no unregistered file lies under ``<files>/spectra/`` (orphans);
- runs: no ``meta.runs`` row left 'running' by a killed process;
- data tests: the declarative tests of every built model and the audits over built relations pass.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import duckdb

from .datafiles import SPECTRA_KIND, orphan_files, sha256_of, warehouse_path
from .migrate import SCHEMA_VERSION, current_version
from .runner import Project, recorded_config, run_tests
from .runner.ledger import Ledger, partition_key
from .runner.materialise import present_partitions, tmp_name
from .warehouse import holder, quote_ident, relation_kind

LEDGER_STATUSES = ("built", "failed", "skipped")    # what the runner writes into meta.model_runs


@dataclass(frozen=True)
class Problem:
    check: str          # schema | ledger | relations | data_files | orphans | runs | tests
    subject: str        # the model, relation, file or run
    what: str
    fix: str            # the command that fixes it

    def line(self) -> str:
        return f"{self.subject}: {self.what}; fix: {self.fix}"


def diagnose(con: duckdb.DuckDBPyConnection, project: Project, warehouse: str | Path,
             checksums: bool = True, tests: bool = True) -> list[Problem]:
    """Every problem of the warehouse ``con`` is connected to (``warehouse``: the path as the user
    wrote it, for the fix commands); a warehouse an older mgold wrote gets only its migration."""
    w = f"-w {warehouse}"        # the fix commands' option, as the user wrote the path
    old = schema_problems(con, w)
    if old:
        return old               # the other checks read what the migrations add
    return [*ledger_problems(con, project, w), *relation_problems(con, project, w),
            *data_file_problems(con, w, checksums), *orphan_problems(con, w), *run_problems(con, w),
            *(test_problems(con, project, w) if tests else [])]


def schema_problems(con: duckdb.DuckDBPyConnection, w: str) -> list[Problem]:
    v = current_version(con)
    if v is not None and v >= SCHEMA_VERSION:
        return []
    return [Problem("schema", "meta.schema_version", f"version {v if v is not None else 'none (before versioning)'}, "
                    f"this mgold writes {SCHEMA_VERSION}", f"mgold migrate {w}")]


def _ledger(con: duckdb.DuckDBPyConnection) -> Ledger | None:
    return Ledger(con) if relation_kind(con, "model_runs", "meta") is not None else None


def ledger_problems(con: duckdb.DuckDBPyConnection, project: Project, w: str) -> list[Problem]:
    """The ledger against the relations, for the models of ``project``."""
    ledger = _ledger(con)
    if ledger is None:
        return []
    out = []
    for name in project.order:
        m = project.models[name]
        rebuild = f"mgold sql run --select {name} --full-refresh {w}"
        keys = [name] + ([partition_key(m, p) for p in present_partitions(con, m)] if m.is_partitioned else [])
        for key in keys:
            last = ledger.last.get(key)
            if last is None:
                continue
            if last["status"] not in LEDGER_STATUSES:
                out.append(Problem("ledger", key, f"ledger status {last['status']!r} (run {last['run_id']}) is none "
                                   f"mgold writes ({', '.join(LEDGER_STATUSES)}): meta.model_runs was edited", rebuild))
            elif last["status"] == "failed":
                error = (last["error"] or "").splitlines()[0] if last["error"] else "no error recorded"
                out.append(Problem("ledger", key, f"its last build failed (run {last['run_id']}: {error})", rebuild))
        built = ledger.built.get(name)
        if built is None:
            continue
        kind = relation_kind(con, name)
        if kind is None:
            out.append(Problem("ledger", name, f"the ledger says built (run {built['run_id']}, "
                               f"{_rows(built['row_count'])}) but the relation is missing",
                               f"mgold sql run --select {name} {w}"))
            continue
        if kind != "table":
            continue
        counts = [(name, f"select count(*) from {quote_ident(name)}", [], built)]
        for p in present_partitions(con, m) if m.is_partitioned else ():
            row = ledger.built.get(partition_key(m, p))
            if row is not None:
                counts.append((partition_key(m, p), f"select count(*) from {quote_ident(name)} "
                               f"where {quote_ident(m.partition_by)} = ?", [p], row))
        for key, sql, params, row in counts:
            have = con.execute(sql, params).fetchone()[0]
            if row["row_count"] is not None and have != row["row_count"]:
                out.append(Problem("ledger", key, f"{_rows(have)}, the ledger recorded {_rows(row['row_count'])} "
                                   f"(run {row['run_id']}): the table or meta.model_runs was changed outside mgold",
                                   rebuild))
    return out


def _rows(n) -> str:
    return "no row count" if n is None else f"{n:,} rows"


def relation_problems(con: duckdb.DuckDBPyConnection, project: Project, w: str) -> list[Problem]:
    """Relations in ``main`` that neither a model of the project nor a ledger row explains."""
    ledger = _ledger(con)
    known = set(project.models) | (set(ledger.last) if ledger else set())
    leftovers = tuple(tmp_name(m, "") for m in project.models.values())
    out = []
    for name, kind in con.execute(
            "select table_name, 'table' from duckdb_tables() where database_name = current_database() "
            "and schema_name = 'main' and not internal union all "
            "select view_name, 'view' from duckdb_views() where database_name = current_database() "
            "and schema_name = 'main' and not internal order by 1").fetchall():
        if name in known:
            continue
        if name.startswith(leftovers):
            out.append(Problem("relations", name, f"{kind} left by an interrupted build", f"mgold vacuum {w}"))
        else:
            out.append(Problem("relations", name, f"{kind} that no model makes and no ledger row records",
                               f"drop it if nobody needs it: duckdb {w.removeprefix('-w ')} 'drop {kind} {quote_ident(name)}'"))
    return out


def data_file_changes(con: duckdb.DuckDBPyConnection, checksums: bool = True) -> list[tuple[str, str]]:
    """(path, what is wrong) for the registered Parquet files that are missing, resized or
    (``checksums``) rewritten."""
    if relation_kind(con, "data_files", "meta") is None or warehouse_path(con) is None:
        return []
    root = warehouse_path(con).parent
    out = []
    for path, n_bytes, sha in con.execute("select path, bytes, sha256 from meta.data_files order by path").fetchall():
        f = root / path
        if not f.is_file():
            out.append((path, "registered data file is missing"))
        elif f.stat().st_size != n_bytes:
            out.append((path, f"{f.stat().st_size} bytes, ingest recorded {n_bytes}: the file was rewritten"))
        elif checksums and sha256_of(f) != sha:
            out.append((path, "sha256 differs from what ingest recorded: the file was rewritten"))
    return out


def changed_data_files(con: duckdb.DuckDBPyConnection, checksums: bool = True) -> list[str]:
    """``data_file_changes`` as one-line strings (``mgold sql status`` warns with them)."""
    return [f"{path}: {what}" for path, what in data_file_changes(con, checksums)]


def lost_spectra(con: duckdb.DuckDBPyConnection, lost_parts: list[str]) -> list[tuple[int, str, str]]:
    """(obsid, file, file_sha256) of the landed spectra whose only copy is in ``lost_parts`` (missing or
    rewritten spectra parts): the header rows no intact registered part holds a spectrum for."""
    if relation_kind(con, "lamost_headers", "landing") is None:
        return []
    intact = [r[0] for r in con.execute("select path from meta.data_files where kind = ? order by path",
                                        [SPECTRA_KIND]).fetchall() if r[0] not in set(lost_parts)]
    if not intact:
        return con.execute("select obsid, file, file_sha256 from landing.lamost_headers order by obsid").fetchall()
    return con.execute("select h.obsid, h.file, h.file_sha256 from landing.lamost_headers h "
                       "anti join read_parquet(?) s using (obsid) order by h.obsid", [intact]).fetchall()


def _reland(con: duckdb.DuckDBPyConnection, lost: list[tuple[int, str, str]], w: str) -> str:
    """The command that lands the lost spectra again once ``mgold vacuum --forget-missing`` forgot them."""
    universe = con.execute("select inputs from meta.universe").fetchone() \
        if relation_kind(con, "universe", "meta") else None
    if universe:
        return f"mgold build --inputs {universe[0]} {w}"
    files = sorted({f for _, f, _ in lost if f})
    if not files:
        return f"mgold ingest lamost <the original files> {w}"
    where = files[0] if len(files) == 1 else os.path.commonpath(files)
    return f"mgold ingest lamost {where} {w}"


def data_file_problems(con: duckdb.DuckDBPyConnection, w: str, checksums: bool = True) -> list[Problem]:
    changes = data_file_changes(con, checksums)
    if not changes:
        return []
    lost = lost_spectra(con, [p for p, _ in changes])
    fix = f"mgold vacuum --forget-missing {w}, then {_reland(con, lost, w)}"
    return [Problem("data_files", path, f"{what} ({len(lost):,} spectra in lost parts)", fix)
            for path, what in changes]


def orphan_problems(con: duckdb.DuckDBPyConnection, w: str) -> list[Problem]:
    root = warehouse_path(con)
    return [Problem("orphans", f.relative_to(root.parent).as_posix(),
                    "not registered in meta.data_files (left by an interrupted ingest or vacuum, or a replaced "
                    "universe): nothing reads it", f"mgold vacuum {w}") for f in orphan_files(con)]


def run_problems(con: duckdb.DuckDBPyConnection, w: str) -> list[Problem]:
    """Runs still marked 'running' while no process holds the warehouse: killed."""
    wp = warehouse_path(con)
    if relation_kind(con, "runs", "meta") is None or (wp is not None and holder(wp)):
        return []
    return [Problem("runs", f"run {run_id}", f"still marked running ({command}, PID {pid} on {host}, started "
                    f"{started:%Y-%m-%d %H:%M:%S}) but no process holds the warehouse: it was killed",
                    f"mgold vacuum {w} (any writer marks it aborted)")
            for run_id, command, pid, host, started in con.execute(
                "select run_id, command, pid, host, started_at from meta.runs where status = 'running' "
                "order by started_at").fetchall()]


def test_problems(con: duckdb.DuckDBPyConnection, project: Project, w: str) -> list[Problem]:
    """Failed data tests of the built models and failed audits over relations that exist (a model or
    an audit whose relations were never built is not a fault; a missing built one is a ledger problem)."""
    audits = {a.name: a for a in project.audits}
    out = []
    for r in run_tests(con, project, cfg=recorded_config(con)):
        if r.passed or r.name in ("exists", "model"):
            continue
        if r.kind == "audit" and r.error and any(relation_kind(con, *reversed(d.split(".", 1))) is None
                                                 for d in audits[r.name].depends_on):
            continue
        what = r.error.splitlines()[0] if r.error else f"{r.rows:,} offending row(s)"
        if r.model:
            out.append(Problem("tests", f"{r.model}: {r.name}", what, f"see the rows with mgold sql test --select "
                               f"{r.model} {w}, then rebuild: mgold sql run --select {r.model} --full-refresh {w}"))
        else:
            reads = ",".join(d for d in audits[r.name].depends_on if "." not in d) or "MODEL"
            out.append(Problem("tests", f"audit {r.name}", what, f"see the rows with mgold sql test {w}, then "
                               f"rebuild what it reads: mgold sql run --select {reads} --full-refresh {w}"))
    return out


__all__ = ["Problem", "diagnose", "changed_data_files", "data_file_changes", "lost_spectra", "LEDGER_STATUSES"]
