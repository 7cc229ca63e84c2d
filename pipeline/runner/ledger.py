"""The ledger (``meta.model_runs``, ``meta.runs``, ``meta.run_parameters``): what was built,
from what, and whether a model is stale now."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import duckdb

from ..config import DEFAULT, Config
from ..ingest.catalog_maps import landing_kinds
from ..model import Model
from ..warehouse import META_DDL, quote_ident, relation_kind


def ensure_meta(con: duckdb.DuckDBPyConnection) -> None:
    """meta.* tables (idempotent), so a run works on a bare connection too."""
    for schema in ("meta", "landing"):
        con.execute(f"create schema if not exists {schema}")
    for ddl in META_DDL:
        con.execute(ddl)


class Ledger:
    """The latest build of every model, read once from meta.model_runs and kept
    current as this run builds."""

    COLUMNS = ["model", "kind", "sql_sha256", "upstream_hashes", "config_hash", "run_id",
               "started_at", "finished_at", "row_count", "status", "error"]

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con
        q = ("select {c} from meta.model_runs {w} "
             "qualify row_number() over (partition by model order by finished_at desc) = 1")
        cols = ", ".join(self.COLUMNS)
        self.built = {r[0]: dict(zip(self.COLUMNS, r)) for r in con.execute(
            q.format(c=cols, w="where status = 'built'")).fetchall()}
        self.last = {r[0]: dict(zip(self.COLUMNS, r)) for r in con.execute(q.format(c=cols, w="")).fetchall()}
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
            kinds = landing_kinds(table)          # several catalogue kinds may share one landing table
            shas = [r[0] for r in self.con.execute(
                "select file_sha256 from meta.ingested_files "
                "where ? = kind or starts_with(?, kind || '_') or list_contains(?, kind) order by 1",
                [table, table, kinds]).fetchall()]
            rows = None
            if relation_kind(self.con, table, schema):
                try:
                    rows = self.con.execute(
                        f"select count(*) from {quote_ident(schema)}.{quote_ident(table)}").fetchone()[0]
                except duckdb.Error as e:        # a view over a damaged file: stale, and doctor says why
                    rows = f"unreadable: {str(e).splitlines()[0]}"
            payload = json.dumps([shas, rows])
            self._sources[source] = hashlib.sha256(payload.encode()).hexdigest()
        return self._sources[source]

    def record(self, m: Model, status: str, run_id: str, started: dt.datetime,
               upstream: dict[str, str | None], config_hash: str | None, rows: int | None,
               error: str | None) -> None:
        row = dict(model=m.name, kind=m.kind, sql_sha256=m.sha256,
                   upstream_hashes=json.dumps(upstream, sort_keys=True), config_hash=config_hash,
                   run_id=run_id, started_at=started, finished_at=dt.datetime.now(), row_count=rows,
                   status=status, error=error)
        self.con.execute(f"insert into meta.model_runs ({', '.join(self.COLUMNS)}) "
                         f"values ({', '.join('?' * len(self.COLUMNS))})", [row[c] for c in self.COLUMNS])
        self.last[m.name] = row
        if status == "built":
            self.built[m.name] = row


def config_hash(cfg: Config, m: Model) -> str | None:
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


def stale_reason(con: duckdb.DuckDBPyConnection, cfg: Config, m: Model, ledger: Ledger,
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
        return "code changed" if m.is_python else "SQL changed"
    if last["config_hash"] != config_hash(cfg, m):
        keys = _changed_keys(con, cfg, m, last["run_id"])
        return "config changed" + (f": {', '.join(keys)}" if keys else "")
    recorded = json.loads(last["upstream_hashes"] or "{}")
    for d in m.depends_on:
        if recorded.get(d) != ledger.token(d):
            return f"{d} changed" if "." in d else f"upstream {d} rebuilt"
    return None


def partition_key(m: Model, partition: str) -> str:
    """The ledger name of one partition of a partitioned model: ``lsp_results[golden]``."""
    return f"{m.name}[{partition}]"


def partition_plan(con: duckdb.DuckDBPyConnection, cfg: Config, m: Model, ledger: Ledger,
                   full_refresh: bool = False) -> tuple[list[tuple[str, str, str | None]], list[str]]:
    """([(partition, why it must be built, its own token)] for the stale partitions, [partitions to
    drop]). A partition is stale like a model (never built, code, config or an upstream changed), also
    when its rows are missing or its ``partition_token`` changed; the list of partitions itself
    (config key ``m.partitions``) is not a staleness input of the partitions already built."""
    from .materialise import partition_token, present_partitions

    wanted = list(cfg.flat()[m.partitions])
    present = present_partitions(con, m)
    chash = partition_config_hash(cfg, m)
    stale = []
    for p in wanted:
        token = partition_token(con, m, cfg, p)
        last = ledger.built.get(partition_key(m, p))
        recorded = json.loads(last["upstream_hashes"] or "{}") if last else {}
        changed = [d for d in m.depends_on if d not in m.token_only and recorded.get(d) != ledger.token(d)]
        reason = ("full refresh" if full_refresh else "never built" if last is None
                  else "rows missing" if p not in present
                  else "code changed" if last["sql_sha256"] != m.sha256
                  else "config changed" if last["config_hash"] != chash
                  else "its input changed" if recorded.get("_partition") != token
                  else (f"{changed[0]} changed" if "." in changed[0] else f"upstream {changed[0]} rebuilt")
                  if changed else None)
        if reason:
            stale.append((p, reason, token))
    return stale, [p for p in present if p not in wanted]


def partition_config_hash(cfg: Config, m: Model) -> str | None:
    try:
        return cfg.hash_of([k for k in m.params if k != m.partitions and k not in m.token_only])
    except KeyError:
        return None


def recorded_config(con: duckdb.DuckDBPyConnection, model: str | None = None, run_id: str | None = None) -> Config:
    """The Config a build used (``meta.run_parameters``): of ``run_id``, or of the run that last
    built ``model``, or of the latest finished run; DEFAULT when the warehouse records none.
    Evaluation and reports judge a build by this, never by today's defaults."""
    if relation_kind(con, "run_parameters", "meta") is None:
        return DEFAULT
    if run_id is None and model is not None:
        row = con.execute("select run_id from meta.model_runs where model = ? and status = 'built' "
                          "order by finished_at desc limit 1", [model]).fetchone()
        run_id = row[0] if row else None
    if run_id is None:
        row = con.execute("select r.run_id from meta.runs r where exists (select 1 from meta.run_parameters p "
                          "where p.run_id = r.run_id) order by r.started_at desc limit 1").fetchone()
        run_id = row[0] if row else None
    if run_id is None:
        return DEFAULT
    params = con.execute("select key, value from meta.run_parameters where run_id = ?", [run_id]).fetchall()
    known = DEFAULT.flat()
    return DEFAULT.with_overrides({k: json.loads(v) for k, v in params if k in known})
