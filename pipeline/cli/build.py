"""`mgold build`: the main job, every stage in order."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import EXIT_REJECTED
from ._common import DEFAULT_WAREHOUSE, Sets, Wait, Warehouse, config, fail


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
    wait: Wait = False,
    report: Annotated[bool, typer.Option("--report/--no-report",
                                         help="Write the HTML report (W_files/report/index.html) and print the "
                                              "headline figures at the end.")] = True,
    keep_inputs: Annotated[bool, typer.Option("--keep-inputs/--no-keep-inputs",
                                              help="Keep the synthetic universe's input spectra files after "
                                                   "ingest (Parquet inputs are adopted by hard link: keeping "
                                                   "them costs no disk; FITS inputs are copied).")] = True,
) -> None:
    """Run every stage that exists, in order (synthesise or ingest, SQL models, UDF
    stages), skipping what is fresh. The build holds the warehouse's lock for its whole
    run: a second build or ingest of the same warehouse gets one line naming it. A failed
    stage stops the build with one message naming the stage and cause; the previous
    relations stay intact and rerunning resumes. Exit status 3 when ingest rejected some
    input (the rest was built).

    Example: mgold build --preset demo -w demo/warehouse.duckdb
    """
    from ..build import build as run_build, preset_config

    if (preset is None) == (inputs is None):
        fail("give exactly one of --preset P or --inputs DIR", code=2)
    if preset:
        try:
            cfg = preset_config(preset, seed, set_)
        except (KeyError, ValueError) as e:
            fail(str(e.args[0]) if e.args else str(e), code=2)
    else:
        cfg = config(set_)
    summary = run_build(warehouse, preset=preset, inputs=inputs, cfg=cfg, until=until, fmt=format_,
                        echo=typer.echo, wait=wait, keep_inputs=keep_inputs)
    typer.echo("build finished")
    for line in summary.lines():
        typer.echo(line)
    if report and until is None:
        from ..datafiles import files_dir
        from .report import write_report

        write_report(warehouse, files_dir(warehouse) / "report", headline=True)
    if summary.ingest_rejected:
        raise typer.Exit(EXIT_REJECTED)
