"""`mgold build`: the main job, every stage in order."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..config import DEFAULT
from ._common import DEFAULT_WAREHOUSE, Sets, Warehouse, fail


def build(
    preset: Annotated[str | None, typer.Option(help="Synthetic-universe preset: tiny, demo, paper, "
                                                    "dr11.")] = None,
    inputs: Annotated[Path | None, typer.Option(help="Folder of inputs: a `mgold synth make` output "
                                                     "(with manifest.json), or LAMOST FITS files.")] = None,
    warehouse: Warehouse = DEFAULT_WAREHOUSE,
    until: Annotated[str | None, typer.Option(help="Stop after this stage: synth, ingest, staging, "
                                                   "xmatch, select, labels, spectra, clean, ...")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the synthetic universe.")] = None,
    format_: Annotated[str, typer.Option("--format", help="Synthetic spectra as parquet or fits.")] = "parquet",
    set_: Sets = None,
) -> None:
    """Run every stage that exists, in order (synthesise or ingest, SQL models, UDF
    stages), skipping what is fresh. A failed stage stops the build with one message
    naming the stage and cause; the previous relations stay intact and rerunning
    resumes.

    Example: mgold build --preset demo -w demo/warehouse.duckdb
    """
    from ..build import BuildError, build as run_build, preset_config

    if (preset is None) == (inputs is None):
        fail("give exactly one of --preset P or --inputs DIR", code=2)
    try:
        cfg = preset_config(preset, seed, set_) if preset else DEFAULT.with_overrides(set_)
        summary = run_build(warehouse, preset=preset, inputs=inputs, cfg=cfg, until=until,
                            fmt=format_, echo=typer.echo)
    except (BuildError, KeyError, ValueError) as exc:
        fail(str(exc.args[0]) if exc.args else str(exc))
    typer.echo("build finished")
    for line in summary.lines():
        typer.echo(line)
