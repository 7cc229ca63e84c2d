"""`mgold build`: every stage that exists, in order, skipping what is fresh.

Stages: ``synth`` (only with a preset) -> ``ingest`` -> the model layers of the
runner (staging, xmatch, select, labels, spectra, clean, golden, laspm, marts).

The build holds the warehouse's write lock for its whole run (synthesis included) and
uses one connection. Ingest is idempotent (files are keyed by sha256) and the runner
rebuilds only stale models, so rerunning after a failure resumes where it stopped.
Every step is atomic: synth swaps a complete universe folder in; a new universe
replaces the landing data of the old one in ONE transaction (and the old spectra
files are deleted only after it commits); each model swaps in its table. A failure
or a kill at any point leaves the last good warehouse intact.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from . import runner
from .config import DEFAULT, Config
from .errors import MgoldError, UsageError, WarehouseError
from .datafiles import files_dir, files_dir_of, remove_orphans
from .warehouse import finish_run, new_run_id, open_warehouse, set_memory_limit, start_run, transaction

STAGES = ("synth", "ingest", *runner.LAYERS)
# landing tables a new universe does not replace: people's work
KEPT_LANDING = ("inspection_decisions",)


class BuildError(MgoldError):
    """A stage failed; the message names the stage and the cause."""


@dataclass
class BuildSummary:
    warehouse: Path
    inputs: Path | None = None
    run_id: str = ""
    rows: dict[str, int] = field(default_factory=dict)       # model -> rows
    stage_seconds: dict[str, float] = field(default_factory=dict)
    ingest_rejected: int = 0

    def lines(self) -> list[str]:
        out = [f"warehouse: {self.warehouse}", f"parquet:   {files_dir(self.warehouse)}"]
        if self.inputs:
            out.append(f"inputs:    {self.inputs}")
        for stage, secs in self.stage_seconds.items():
            out.append(f"  {stage:<9s} {secs:7.1f} s")
        if self.rows:
            out.append("rows per model:")
            out += [f"  {m:<32s} {n:>10,d}" for m, n in self.rows.items()]
        if self.ingest_rejected:
            out.append(f"ingest rejected {self.ingest_rejected} file(s)/row(s): see meta.ingest_errors "
                       "(exit status 3)")
        w = f"-w {self.warehouse}"
        if "lbl_labelled_sample" in self.rows:
            out.append(f"next: mgold report labels {w}   (counts per source, offsets, accuracy)")
        if "cln_kept" in self.rows:
            out += [f"      mgold report clean {w}    (cleaning accuracy vs truth)",
                    f"      mgold inspect list {w}    (bins waiting for a person)"]
        if "lsp_results" in self.rows:
            out.append(f"      mgold report laspm {w}    (LASPM precision, comparisons, accuracy)")
        return out


def preset_config(preset: str, seed: int | None = None, sets: list[str] | None = None) -> Config:
    """The config of a synthetic-universe preset, with a seed and --set overrides applied."""
    from .synth.presets import config_for

    return config_for(preset, seed, sets)


def _check_disk(cfg: Config, fmt: str, inputs: Path) -> None:
    """Refuse, before writing anything, a universe the file system cannot hold (needed vs available)."""
    import shutil

    from .synth.presets import disk_needed_bytes, expected_spectra

    need = disk_needed_bytes(cfg, fmt)
    folder = inputs.parent
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if need > free:
        raise MgoldError(f"the {cfg.synth.preset} universe (~{expected_spectra(cfg):,d} spectra, {fmt}) needs "
                         f"~{need / 1e9:.1f} GB under {folder}, {free / 1e9:.1f} GB are free: free space, build "
                         "into another -w, or shrink it with --set synth.n_stars=N")


def _ingested_spectra(con, inputs: Path) -> set[str]:
    """Input spectra files this warehouse's universe already ingested (they may be pruned from disk)."""
    held = con.execute("select inputs from meta.universe").fetchall()
    if held != [(str(inputs),)]:
        return set()
    return {r[0] for r in con.execute("select file from meta.ingested_files where kind = 'lamost'").fetchall()}


def _inputs_fresh(inputs: Path, cfg: Config, fmt: str, ingested: set[str] = frozenset()) -> str | None:
    """None when ``inputs`` holds the complete universe of ``cfg`` in ``fmt`` (spectra files pruned
    after their ingest count as present), else why not."""
    from .synth.make import generator_version, manifest_complete

    manifest = inputs / "manifest.json"
    if not manifest.exists():
        return "no universe yet"
    m = json.loads(manifest.read_text())
    want = {k: v for k, v in cfg.flat().items() if k.startswith("synth.")}
    if m.get("format") != fmt:
        return f"format {m.get('format')} -> {fmt}"
    if m.get("config") != want:
        changed = sorted(k for k in set(want) | set(m.get("config", {})) if want.get(k) != m["config"].get(k))
        return "config changed: " + ", ".join(changed[:4]) + (" ..." if len(changed) > 4 else "")
    if m.get("generator") != generator_version():
        return "generator changed"
    return manifest_complete(inputs, ingested)


def build(warehouse: Path, *, preset: str | None = None, inputs: Path | None = None,
          cfg: Config | None = None, until: str | None = None, fmt: str = "parquet",
          echo: Callable[[str], None] = print, wait: bool = False, keep_inputs: bool = True) -> BuildSummary:
    """Build ``warehouse`` from a synthetic preset or an inputs folder (with a manifest.json).
    ``keep_inputs`` False: a synthetic universe's input spectra files are deleted once ingested (their
    data lives on in the warehouse's parts; catalogues, truth and the manifest stay)."""
    if (preset is None) == (inputs is None):
        raise UsageError("give exactly one of a preset or an inputs folder")
    if until is not None and until not in STAGES:
        raise UsageError(f"unknown stage {until!r}; stages are {', '.join(STAGES)}")
    if inputs is not None and not Path(inputs).is_dir():
        raise UsageError(f"inputs folder {inputs} does not exist")
    cfg = cfg or DEFAULT
    warehouse = Path(warehouse)
    project = runner.Project.load()     # before the lock: a broken model is reported, not half-built
    with open_warehouse(warehouse, command=f"mgold build {'--preset ' + preset if preset else inputs}",
                        wait=wait) as con:
        summary = BuildSummary(warehouse=warehouse, run_id=new_run_id())
        set_memory_limit(con, cfg.duckdb.memory_limit_gb)   # bounded memory at any size
        start_run(con, cfg, summary.run_id, "build")
        try:
            _build(con, project, summary, preset, inputs, cfg, until, fmt, echo, keep_inputs)
        except BaseException:
            finish_run(con, summary.run_id, "failed")
            raise
        finish_run(con, summary.run_id, "ok")
    return summary


def _build(con, project, summary: BuildSummary, preset, inputs, cfg: Config, until, fmt, echo,
           keep_inputs: bool = True) -> None:
    def stage(name: str) -> float:
        echo(f"[{name}] ...")
        return time.perf_counter()

    def done(name: str, t0: float, note: str = "") -> bool:
        summary.stage_seconds[name] = time.perf_counter() - t0
        echo(f"[{name}] done in {summary.stage_seconds[name]:.1f} s{': ' + note if note else ''}")
        return until == name

    # -- synth ---------------------------------------------------------------
    if preset is not None:
        from .synth.make import make

        inputs = files_dir_of(con) / "inputs"
        t0 = stage("synth")
        why = _inputs_fresh(inputs, cfg, fmt, _ingested_spectra(con, inputs))
        if why is None:
            note = f"fresh ({inputs})"
        else:
            _check_disk(cfg, fmt, inputs)
            try:
                make(cfg, inputs, fmt)
            except Exception as exc:
                raise BuildError(f"stage synth failed: {type(exc).__name__}: {exc}") from exc
            note = f"wrote {inputs} ({why})"
        if done("synth", t0, note):
            return
    summary.inputs = Path(inputs)

    # -- ingest --------------------------------------------------------------
    t0 = stage("ingest")
    try:
        summary.ingest_rejected = ingest_inputs(con, Path(inputs), cfg, summary.run_id, echo)
    except MgoldError:
        raise
    except Exception as exc:
        raise BuildError(f"stage ingest failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
    if preset is not None and not keep_inputs:
        _prune_inputs(con, Path(inputs), echo)
    if done("ingest", t0, f"{summary.ingest_rejected} rejected"):
        return

    # -- models, layer by layer ---------------------------------------------
    def on_event(res) -> None:
        # a layer's time is the sum of its models' build times (events arrive after each model)
        if res.layer not in summary.stage_seconds:
            summary.stage_seconds[res.layer] = 0.0
            echo(f"[{res.layer}]")
        summary.stage_seconds[res.layer] += res.seconds
        rows = "" if res.rows is None else f"{res.rows:,d} rows"
        echo(f"  {res.name:<32s} {res.status:<7s} {rows:>14s} {res.seconds:6.1f} s")
        if res.rows is not None:
            summary.rows[res.name] = res.rows

    until_layer = until if until in runner.LAYERS else None
    results = runner.run(con, project, cfg, until_layer=until_layer, on_event=on_event,
                         run_id=summary.run_id, command="build")
    failed = [r for r in results if r.status == "failed"]
    if failed:
        r = failed[0]
        raise BuildError(f"stage {r.layer} failed at model {r.name}: {r.error}")


def _prune_inputs(con, inputs: Path, echo: Callable[[str], None]) -> None:
    """Delete the universe's input spectra files that were ingested (adopted parts are hard links of them,
    so their data stays; a FITS input was copied into parts)."""
    gone, size = 0, 0
    for f in sorted(_ingested_spectra(con, inputs)):
        p = Path(f)
        if p.is_file() and p.is_relative_to(inputs):
            size += p.stat().st_size
            p.unlink()
            gone += 1
    if gone:
        echo(f"[ingest] --no-keep-inputs: removed {gone:,d} ingested input spectra file(s), {size / 1e9:.2f} GB "
             f"of names in {inputs} (the warehouse keeps their data)")


def ingest_inputs(con: duckdb.DuckDBPyConnection, inputs: Path, cfg: Config, run_id: str,
                  echo: Callable[[str], None] = print) -> int:
    """Ingest every file of an inputs folder; return how many files/rows were rejected.

    With a ``manifest.json`` (as ``mgold synth make`` writes), each file is ingested as the
    kind it names and the truth tables are loaded: when the warehouse holds another universe,
    the new one replaces it in one transaction. Without one, the folder is taken as LAMOST
    spectra files only.
    """
    from .ingest.catalog import ingest_catalog
    from .ingest.lamost import ingest_lamost

    manifest = inputs / "manifest.json"
    if not manifest.exists():
        return ingest_lamost(con, [inputs], cfg, run_id=run_id).rejected
    universe = hashlib.sha256(manifest.read_bytes()).hexdigest()
    m = json.loads(manifest.read_text())
    held = [r[0] for r in con.execute("select manifest_sha256 from meta.universe").fetchall()]
    replacing = held != [universe]
    pruned = set() if replacing else _ingested_spectra(con, inputs)     # removed by --no-keep-inputs
    by_kind: dict[str, list[Path]] = {}
    for entry in m["files"]:
        p = inputs / entry["path"]
        if not p.exists() and str(p) in pruned:
            continue
        by_kind.setdefault(entry["kind"], []).append(p)
    rejected = 0
    with transaction(con):
        if replacing:
            _forget_other_universe(con, held, universe, echo)
        for kind, paths in by_kind.items():
            if kind == "lamost":
                rejected += ingest_lamost(con, paths, cfg, run_id=run_id, universe=universe).rejected
            else:
                rejected += ingest_catalog(con, kind, paths, cfg, run_id=run_id, universe=universe).rejected
        if m.get("truth"):
            from .synth.truth import load_truth

            load_truth(con, inputs)
        con.execute("delete from meta.universe")
        con.execute("insert into meta.universe values (?, ?)", [universe, str(inputs)])
    if replacing:
        remove_orphans(con)      # the old universe's spectra files, unreferenced since the commit
    return rejected


def _forget_other_universe(con: duckdb.DuckDBPyConnection, held: list[str], universe: str,
                           echo: Callable[[str], None]) -> None:
    """Drop the landing data and truth of the universe the warehouse holds (inside the caller's
    transaction), saying what goes and why. A warehouse holding real ingested data (no universe
    marker, files ingested) is refused: real and synthetic data are never mixed."""
    files = con.execute("select count(*) from meta.ingested_files where kind not in "
                        f"({', '.join(repr(k) for k in KEPT_LANDING)})").fetchone()[0]
    if not held and files:
        raise WarehouseError("this warehouse holds ingested data that is not a synthetic universe; build "
                             "the universe into a new warehouse (-w) instead of mixing them")
    tables = [r[0] for r in con.execute(
        "select table_name from duckdb_tables() where schema_name = 'landing' order by 1").fetchall()
        if r[0] not in KEPT_LANDING]
    truth = [r[0] for r in con.execute(
        "select table_name from duckdb_tables() where schema_name = 'truth' order by 1").fetchall()]
    if held:
        n_spectra = con.execute("select count(*) from landing.lamost_headers").fetchone()[0] \
            if "lamost_headers" in tables else 0
        echo(f"[ingest] replacing universe {held[0][:12]} with {universe[:12]} (the inputs changed): dropping "
             f"its {n_spectra:,d} spectra, {len(tables)} landing table(s) and {len(truth)} truth table(s); "
             "inspection decisions are kept")
    con.execute("drop view if exists landing.lamost_spectra")
    for t in tables:
        con.execute(f'drop table landing."{t}"')
    for t in truth:
        con.execute(f'drop table truth."{t}"')
    con.execute("delete from meta.ingested_files where kind not in "
                f"({', '.join(repr(k) for k in KEPT_LANDING)})")
    con.execute("delete from meta.data_files where kind = 'lamost_spectra'")
    con.execute("delete from meta.universe")
