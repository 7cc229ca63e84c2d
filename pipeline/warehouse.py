"""Opening a warehouse: one DuckDB file plus a sibling folder of Parquet files.

Layout for ``path/to/w.duckdb``::

    path/to/w.duckdb          catalogues, labels, results, meta.*, truth.*
    path/to/w.duckdb.lock     held (flock) by the one process writing the warehouse
    path/to/w_files/spectra/  Parquet spectra (landing and processed)

A command opens the warehouse once, at the edge (``open_warehouse``), and passes the
connection down; library functions never open their own. A writer (build, ingest,
sql run, inspect decide, ...) first takes the lock for its whole run, so a second
writer gets one line naming the holder (or waits with ``wait=True``); readers open
read-only (DuckDB refuses them while a writer has the file open, and the message then
names the writer too).

Views over Parquet use paths relative to the warehouse folder; ``connect`` sets
DuckDB's ``file_search_path`` so they resolve wherever the process runs. From the
plain ``duckdb`` CLI, start in the warehouse folder.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from .config import DEFAULT
from .datafiles import lock_path, remove_orphans
from .errors import UsageError, WarehouseBusy, WarehouseError

SCHEMAS = ("meta", "landing", "truth")

META_DDL = [
    """create table if not exists meta.runs (
        run_id varchar primary key, command varchar, started_at timestamp,
        finished_at timestamp, status varchar, git_rev varchar, config_json varchar,
        pid integer, host varchar)""",
    """create table if not exists meta.run_parameters (
        run_id varchar, key varchar, value varchar)""",
    """create table if not exists meta.model_runs (
        model varchar, kind varchar, sql_sha256 varchar, upstream_hashes varchar,
        config_hash varchar, run_id varchar, started_at timestamp, finished_at timestamp,
        row_count bigint, status varchar, error varchar)""",
    """create table if not exists meta.ingest_errors (
        run_id varchar, file varchar, row bigint, reason varchar, severity varchar,
        "at" timestamp)""",
    """create table if not exists meta.ingested_files (
        file_sha256 varchar, file varchar, kind varchar, run_id varchar, n_rows bigint,
        "at" timestamp)""",
    # every Parquet file the warehouse references (path relative to the warehouse folder),
    # with what ingest recorded: `mgold doctor` / `sql status` compare the files against it
    """create table if not exists meta.data_files (
        path varchar primary key, kind varchar, n_rows bigint, bytes bigint, sha256 varchar,
        run_id varchar, "at" timestamp)""",
    # the synthetic universe the landing tables hold (sha256 of its manifest.json), if any
    """create table if not exists meta.universe (manifest_sha256 varchar, inputs varchar)""",
    """create table if not exists meta.schema_version (version integer, "at" timestamp)""",
    # people's decisions on the bins DBSCAN could not settle (pipeline/inspect.py); a landing
    # source of cln_kept, kept across universes
    """create table if not exists landing.inspection_decisions (
        bin_id varchar, obsid bigint, decision varchar, decided_at timestamp, note varchar,
        suggested boolean default false)""",
]


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def relation_kind(con: duckdb.DuckDBPyConnection, name: str, schema: str = "main") -> str | None:
    """'table', 'view' or None for ``schema.name`` in the current database."""
    row = con.execute(
        "select table_type from information_schema.tables "
        "where table_catalog = current_database() and table_schema = ? and table_name = ?",
        [schema, name]).fetchone()
    if row is None:
        return None
    return "view" if row[0] == "VIEW" else "table"


class transaction:
    """``with transaction(con):`` begin ... commit, rolled back on any exception.

    Inside a transaction the caller already opened with this class (a build replacing a
    universe wraps every ingest in one), it is a no-op: the outer one commits or rolls back
    everything. (DuckDB has no savepoints, and a failed BEGIN would abort the outer one, so
    nesting is tracked here, per connection object.)"""

    _open: set[int] = set()

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con
        self.owner = False

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        if id(self.con) not in transaction._open:
            self.con.execute("begin")
            transaction._open.add(id(self.con))
            self.owner = True
        return self.con

    def __exit__(self, exc_type, exc, tb) -> bool:
        if not self.owner:
            return False
        transaction._open.discard(id(self.con))
        if exc_type is None:
            self.con.execute("commit")
        else:
            try:
                self.con.execute("rollback")
            except duckdb.Error:
                pass
        return False


def _check_path(p: Path, read_only: bool) -> None:
    if p.is_dir():
        raise UsageError(f"{p} is a directory, not a warehouse file (give -w path/to/name.duckdb)")
    if read_only and not p.exists():
        raise WarehouseError(f"no warehouse at {p} (build one with `mgold build`, or check -w)")


def connect(warehouse: str | Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) a warehouse with its schemas and meta tables.

    Errors are one line: a directory, a missing file (read-only), a file held by another
    process (naming it), a read-only file system."""
    p = Path(warehouse)
    _check_path(p, read_only)
    try:
        if not read_only:
            p.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(p), read_only=read_only)
    except duckdb.IOException as e:
        msg = str(e).splitlines()[0]
        if "lock" in msg.lower():
            raise WarehouseBusy(f"{p} is in use: {holder(p) or msg}") from None
        raise WarehouseError(f"cannot open {p}: {msg}") from None
    except OSError as e:
        raise WarehouseError(f"cannot open {p}: {e.strerror or e}") from None
    except duckdb.Error as e:
        raise WarehouseError(f"cannot open {p}: {str(e).splitlines()[0]}") from None
    con.execute(f"set file_search_path = '{p.resolve().parent.as_posix()}'")
    set_memory_limit(con, DEFAULT.duckdb.memory_limit_gb)  # every command bounded; a build sets its config's
    if read_only:
        from .migrate import check_version

        try:
            check_version(con)
        except WarehouseError:
            con.close()
            raise
    else:
        try:
            ensure_schema(con)
        except duckdb.Error as e:
            con.close()
            raise WarehouseError(f"cannot write {p}: {str(e).splitlines()[0]}") from None
    return con


def set_memory_limit(con: duckdb.DuckDBPyConnection, gb: float) -> None:
    """DuckDB's working memory for this connection (larger sorts and joins spill to disk). Without it a
    read-only command (a report over a paper-scale warehouse) takes DuckDB's default, 80 % of the RAM."""
    con.execute(f"set memory_limit = '{float(gb)}GB'")


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Schemas and meta tables (idempotent); a warehouse newer than this code is refused."""
    for s in SCHEMAS:
        con.execute(f"create schema if not exists {s}")
    for ddl in META_DDL:
        con.execute(ddl)
    from .migrate import migrate

    migrate(con)


def holder(warehouse: str | Path) -> str | None:
    """Who holds the write lock of ``warehouse``, as one phrase (None when nobody)."""
    lp = lock_path(warehouse)
    try:
        info = json.loads(lp.read_text() or "{}")
    except (OSError, ValueError):
        return None
    if not info or not _locked(lp):
        return None
    return (f"held by PID {info.get('pid')} on {info.get('host')} ({info.get('command')}, "
            f"since {info.get('since')})")


def _locked(lp: Path) -> bool:
    try:
        with open(lp, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
            return False
    except OSError:
        return False


@contextmanager
def write_lock(warehouse: str | Path, command: str, wait: bool = False,
               poll_s: float = 0.5) -> Iterator[None]:
    """Hold the warehouse's write lock for the block (flock: released if the process dies).

    A held lock raises WarehouseBusy naming the holder, or with ``wait`` blocks until free."""
    p = Path(warehouse)
    _check_path(p, read_only=False)
    lp = lock_path(p)
    try:
        lp.parent.mkdir(parents=True, exist_ok=True)
        f = open(lp, "a+")
    except OSError as e:
        raise WarehouseError(f"cannot write {lp}: {e.strerror or e}") from None
    try:
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise WarehouseError(f"cannot lock {lp}: {e.strerror or e}") from None
                if not wait:
                    raise WarehouseBusy(f"{p} is being written: {holder(p) or 'lock held'}; "
                                        "try again when it finishes (or --wait)") from None
                time.sleep(poll_s)
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                            "since": dt.datetime.now().isoformat(timespec="seconds")}))
        f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate()
            f.flush()
            fcntl.flock(f, fcntl.LOCK_UN)
    finally:
        f.close()


@contextmanager
def open_warehouse(warehouse: str | Path, command: str | None = None, read_only: bool = False,
                   wait: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """The one connection of a command: a writer (``command`` given) holds the write lock for
    the whole block; a reader opens read-only."""
    if read_only:
        con = connect(warehouse, read_only=True)
        try:
            yield con
        finally:
            con.close()
        return
    with write_lock(warehouse, command or "mgold", wait=wait):
        con = connect(warehouse)
        try:
            remove_orphans(con)
            yield con
        finally:
            con.close()


def git_rev() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def abort_stale_runs(con: duckdb.DuckDBPyConnection) -> int:
    """Runs left 'running' by a killed process become 'aborted' (their pid/host stay recorded).
    Only a writer calls this, and a writer holds the warehouse lock, so no run of another
    live process can be 'running'."""
    n = con.execute("select count(*) from meta.runs where status = 'running'").fetchone()[0]
    if n:
        con.execute("update meta.runs set status = 'aborted', finished_at = coalesce(finished_at, ?) "
                    "where status = 'running'", [dt.datetime.now()])
    return n


def start_run(con: duckdb.DuckDBPyConnection, cfg, run_id: str, command: str) -> bool:
    """Write meta.runs / meta.run_parameters unless the run row exists; True when this call
    created it (and so must finish it)."""
    owned = con.execute("select count(*) from meta.runs where run_id = ?", [run_id]).fetchone()[0] == 0
    if owned:
        abort_stale_runs(con)
        con.execute("insert into meta.runs (run_id, command, started_at, finished_at, status, git_rev, "
                    "config_json, pid, host) values (?, ?, ?, null, 'running', ?, ?, ?, ?)",
                    [run_id, command, dt.datetime.now(), git_rev(), json.dumps(cfg.flat(), sort_keys=True),
                     os.getpid(), socket.gethostname()])
    if not con.execute("select count(*) from meta.run_parameters where run_id = ?", [run_id]).fetchone()[0]:
        flat = sorted(cfg.flat().items())
        con.execute("insert into meta.run_parameters select ?, unnest(?::varchar[]), unnest(?::varchar[])",
                    [run_id, [k for k, _ in flat], [json.dumps(v) for _, v in flat]])
    return owned


def finish_run(con: duckdb.DuckDBPyConnection, run_id: str, status: str) -> None:
    con.execute("update meta.runs set finished_at = ?, status = ? where run_id = ?",
                [dt.datetime.now(), status, run_id])


def refuse_mixing(con: duckdb.DuckDBPyConnection, universe: str | None) -> None:
    """An ingest of real files (``universe`` None) into a warehouse holding a synthetic universe,
    or of one universe into a warehouse holding another, is refused with one line."""
    held = [r[0] for r in con.execute("select manifest_sha256 from meta.universe").fetchall()]
    if held and held != [universe]:
        what = "real files" if universe is None else f"universe {universe[:12]}"
        raise WarehouseError(f"this warehouse holds the synthetic universe {held[0][:12]} (mgold build "
                             f"--preset); {what} would mix with it: ingest into another warehouse (-w)")


def new_run_id() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


PRINTED_PER_RUN = 20
_printed: dict[tuple[str, str], int] = {}


def record_ingest_error(con: duckdb.DuckDBPyConnection, run_id: str, file: str | Path,
                        reason: str, severity: str = "error", row: int | None = None) -> None:
    """Log one rejected file/row in ``meta.ingest_errors`` and print one line on stderr (the first
    PRINTED_PER_RUN of each severity per run: a release's ~1% of spectra without an RV would be
    10,000 lines; the rest are counted and stay queryable)."""
    where = f"{file}" + (f":{row}" if row is not None else "")
    n = _printed[(run_id, severity)] = _printed.get((run_id, severity), 0) + 1
    if n <= PRINTED_PER_RUN:
        print(f"mgold: {severity}: {where}: {reason}", file=sys.stderr)
    elif n == PRINTED_PER_RUN + 1:
        print(f"mgold: {severity}: more {severity}s of this run are not printed; every one is in "
              f"meta.ingest_errors (mgold sql query \"select * from meta.ingest_errors where run_id = "
              f"'{run_id}'\")", file=sys.stderr)
    con.execute(
        "insert into meta.ingest_errors values (?, ?, ?, ?, ?, now())",
        [run_id, str(file), row, reason, severity],
    )
