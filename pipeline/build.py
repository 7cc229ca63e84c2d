"""`mgold build`: every stage that exists, in order, skipping what is fresh.

Stages: ``synth`` (only with a preset) -> ``ingest`` -> the model layers of the
runner (staging, xmatch, select, labels, spectra, clean, golden, laspm, marts).
Ingest is idempotent (files are keyed by sha256) and the runner rebuilds only
stale models, so rerunning after a failure resumes where it stopped. Each model
swaps in atomically: a failed stage leaves the last good relations in place.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import runner
from .config import DEFAULT, Config
from .warehouse import connect, files_dir, new_run_id

STAGES = ("synth", "ingest", *runner.LAYERS)


class BuildError(RuntimeError):
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
            out.append(f"ingest rejected {self.ingest_rejected} file(s)/row(s): see meta.ingest_errors")
        w = f"-w {self.warehouse}"
        if "lbl_labelled_sample" in self.rows:
            out.append(f"next: mgold report labels {w}   (counts per source, offsets, accuracy)")
        if "cln_kept" in self.rows:
            out += [f"      mgold report clean {w}    (cleaning accuracy vs truth)",
                    f"      mgold inspect list {w}    (bins waiting for a person)"]
        return out


def preset_config(preset: str, seed: int | None = None, sets: list[str] | None = None) -> Config:
    """The config of a synthetic-universe preset, with a seed and --set overrides applied."""
    from .synth.presets import config_for

    return config_for(preset, seed, sets)


def _manifest_fresh(manifest: Path, cfg: Config, fmt: str) -> bool:
    if not manifest.exists():
        return False
    from .synth.make import generator_version

    m = json.loads(manifest.read_text())
    want = {k: v for k, v in cfg.flat().items() if k.startswith("synth.")}
    return m.get("format") == fmt and m.get("config") == want and m.get("generator") == generator_version()


def build(warehouse: Path, *, preset: str | None = None, inputs: Path | None = None,
          cfg: Config | None = None, until: str | None = None, fmt: str = "parquet",
          echo: Callable[[str], None] = print) -> BuildSummary:
    """Build ``warehouse`` from a synthetic preset or an inputs folder (with a manifest.json)."""
    if (preset is None) == (inputs is None):
        raise BuildError("give exactly one of a preset or an inputs folder")
    if until is not None and until not in STAGES:
        raise BuildError(f"unknown stage {until!r}; stages are {', '.join(STAGES)}")
    cfg = cfg or DEFAULT
    warehouse = Path(warehouse)
    summary = BuildSummary(warehouse=warehouse, run_id=new_run_id())

    def stage(name: str):
        echo(f"[{name}] ...")
        return time.perf_counter()

    def done(name: str, t0: float, note: str = "") -> bool:
        summary.stage_seconds[name] = time.perf_counter() - t0
        echo(f"[{name}] done in {summary.stage_seconds[name]:.1f} s{': ' + note if note else ''}")
        return until == name

    # -- synth ---------------------------------------------------------------
    if preset is not None:
        from .synth.make import make

        inputs = files_dir(warehouse) / "inputs"
        manifest = inputs / "manifest.json"
        t0 = stage("synth")
        if _manifest_fresh(manifest, cfg, fmt):
            note = f"fresh ({inputs})"
        else:
            try:
                make(cfg, inputs, fmt)
            except Exception as exc:
                raise BuildError(f"stage synth failed: {type(exc).__name__}: {exc}") from exc
            note = f"wrote {inputs}"
        if done("synth", t0, note):
            return summary
    summary.inputs = inputs

    # -- ingest --------------------------------------------------------------
    t0 = stage("ingest")
    try:
        summary.ingest_rejected = ingest_inputs(Path(inputs), warehouse, cfg)
    except BuildError:
        raise
    except Exception as exc:
        raise BuildError(f"stage ingest failed: {type(exc).__name__}: {exc}") from exc
    if done("ingest", t0, f"{summary.ingest_rejected} rejected"):
        return summary

    # -- models, layer by layer ---------------------------------------------
    con = connect(warehouse)
    try:
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
        results = runner.run(con, cfg, until_layer=until_layer, on_event=on_event,
                             run_id=summary.run_id)
        failed = [r for r in results if r.status == "failed"]
        if failed:
            r = failed[0]
            raise BuildError(f"stage {r.layer} failed at model {r.name}: {r.error}")
    finally:
        con.close()
    return summary


def ingest_inputs(inputs: Path, warehouse: Path, cfg: Config) -> int:
    """Ingest every file of an inputs folder; return how many files/rows were rejected.

    With a ``manifest.json`` (as ``mgold synth make`` writes), each file is ingested
    as the kind it names and the truth tables are loaded. Without one, the folder is
    taken as LAMOST spectra files only.
    """
    from .ingest.catalog import ingest_catalog
    from .ingest.lamost import ingest_lamost

    manifest = inputs / "manifest.json"
    if not inputs.is_dir():
        raise BuildError(f"stage ingest failed: inputs folder {inputs} does not exist")
    if not manifest.exists():
        return ingest_lamost([inputs], warehouse, cfg).rejected
    universe = hashlib.sha256(manifest.read_bytes()).hexdigest()
    _forget_other_universe(warehouse, universe, inputs)
    m = json.loads(manifest.read_text())
    by_kind: dict[str, list[Path]] = {}
    for entry in m["files"]:
        by_kind.setdefault(entry["kind"], []).append(inputs / entry["path"])
    rejected = 0
    for kind, paths in by_kind.items():
        if kind == "lamost":
            rejected += ingest_lamost(paths, warehouse, cfg).rejected
        else:
            rejected += ingest_catalog(kind, paths, warehouse).rejected
    con = connect(warehouse)
    try:
        if m.get("truth"):
            from .synth.truth import load_truth

            load_truth(con, inputs)
        con.execute("begin")
        con.execute("delete from meta.universe")
        con.execute("insert into meta.universe values (?, ?)", [universe, str(inputs)])
        con.execute("commit")
    finally:
        con.close()
    return rejected


def _forget_other_universe(warehouse: Path, universe: str, inputs: Path) -> None:
    """A warehouse holds one synthetic universe. When the inputs' manifest is not the one
    it was built from (a --set, a new seed, a changed generator), the old landing data
    must go: ingest keeps the FIRST row of a key, so re-ingesting a new universe over the
    old one would silently keep the old rows. Spectra files go first, then the tables in
    one transaction; the marker is cleared with them, so a crash in between repeats this.
    Inspection decisions (people's work) are kept. Data ingested without a manifest (real
    files) is never dropped: that is refused."""
    import shutil

    from .ingest.lamost import spectra_dir

    if not Path(warehouse).exists():
        return
    con = connect(warehouse)
    try:
        held = [r[0] for r in con.execute("select manifest_sha256 from meta.universe").fetchall()]
        files = [r[0] for r in con.execute("select file from meta.ingested_files "
                                           "where kind <> 'inspection_decisions'").fetchall()]
        if held == [universe] or not files:
            return
        inputs_dir = Path(inputs).resolve()
        # no marker (a warehouse older than it): a universe still if every file came from inputs/
        if not held and not all(Path(f).resolve().is_relative_to(inputs_dir) or f.startswith(str(inputs))
                                for f in files):
            raise BuildError(f"{warehouse} holds ingested data that is not a synthetic universe; "
                             "build the universe into a new warehouse (-w) instead of mixing them")
        shutil.rmtree(spectra_dir(warehouse), ignore_errors=True)
        tables = [r[0] for r in con.execute(
            "select table_name from duckdb_tables() where schema_name = 'landing' "
            "and table_name <> 'inspection_decisions'").fetchall()]
        con.execute("begin")
        con.execute("drop view if exists landing.lamost_spectra")
        for t in tables:
            con.execute(f'drop table landing."{t}"')
        con.execute("delete from meta.ingested_files where kind <> 'inspection_decisions'")
        con.execute("delete from meta.universe")
        con.execute("commit")
    finally:
        con.close()
