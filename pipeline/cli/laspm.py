"""`mgold laspm`: fit every M-type spectrum against a template library (paper §4)."""

from __future__ import annotations

import json
import resource
import time
from typing import Annotated

import typer

from ..errors import UsageError
from ._common import DEFAULT_WAREHOUSE, Sets, Wait, Warehouse, config, fail, writing

app = typer.Typer(help="LASPM: template chi^2 fits of every M-type spectrum (paper §4).", no_args_is_help=True)


@app.command("run")
def run_cmd(
    library: Annotated[str, typer.Option("--library", "-l", help="Template library: golden, model_grid (derived "
                                                                 "by the build) or an ingested one (mgold "
                                                                 "ingest library), e.g. miles.")],
    warehouse: Warehouse = DEFAULT_WAREHOUSE,
    set_: Sets = None,
    wait: Wait = False,
) -> None:
    """Fit every ingested M-type LAMOST spectrum (class STAR, subclass M*) against LIBRARY and write
    its result set into lsp_results (one partition per library), then the precision and comparison
    models over it. A result set already fresh is skipped; other result sets in the warehouse are kept
    (laspm.libraries becomes them plus LIBRARY). Works on a warehouse holding only ingested LAMOST files
    and a library: models that need what is not there are skipped, saying so. Prints the spectra/s and
    the peak memory.

    Example: mgold ingest lamost ../shared/data/real/lamost -w real.duckdb && mgold ingest library miles ../shared/data/real/libraries/miles_k_m_stars -w real.duckdb && mgold laspm run -w real.duckdb --library miles
    """
    from ..runner import Project, closure, lineage, run
    from ..runner.materialise import present_partitions
    from ..stages.laspm import DERIVED

    project = Project.load()
    m = project.models["lsp_results"]
    with writing(warehouse, wait) as con:
        if library not in DERIVED and not con.execute(
                "select count(*) from information_schema.tables where table_schema = 'landing' "
                "and table_name = 'library_spectra'").fetchone()[0]:
            raise UsageError(f"no library {library!r}: ingest one first (mgold ingest library KIND PATH -w W), "
                             "or use golden / model_grid")
        libraries = list(dict.fromkeys([*present_partitions(con, m), library]))
        cfg = config([*(set_ or []), f"laspm.libraries={json.dumps(libraries)}"])
        _, down = lineage(project.models)
        names = {"stg_lamost", "lsp_results", *closure(["lsp_results"], down)}
        if library in DERIVED:
            names.add("lsp_library")
        t0 = time.perf_counter()

        def echo(r) -> None:
            why = (r.error or "").splitlines()[0] if r.status == "failed" else (r.reason or "")
            typer.echo(f"{r.status:>7}  {r.name:<22} {'' if r.rows is None else f'{r.rows:,d} rows':>14} "
                       f"{r.seconds:7.1f}s  {why}", err=True)

        results = run(con, project, cfg, select=",".join(sorted(names)), on_event=echo, command="laspm run",
                      skip_unbuildable=True)
        n = con.execute("select count(*) from lsp_results where library = ?", [library]).fetchone()[0] \
            if any(r.name == "lsp_results" and r.rows is not None for r in results) else 0
    seconds = time.perf_counter() - t0
    res = {r.name: r for r in results}
    failed = [r for r in results if r.status == "failed"]
    if failed:
        fail(f"{failed[0].name}: {(failed[0].error or '').splitlines()[0]}")
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    state = res["lsp_results"].status
    typer.echo(f"lsp_results[{library}]: {n:,d} spectra ({state}); {seconds:.1f} s"
               + (f", {n / seconds:,.0f} spectra/s" if state == "built" and seconds > 0 else "")
               + f"; peak RSS {rss_gb:.2f} GB")
    typer.echo(f"next: mgold report laspm -w {warehouse}")
