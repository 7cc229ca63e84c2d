"""`mgold ingest`: LAMOST spectra files, external catalogues and reference libraries into a warehouse."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..config import DEFAULT
from ..ingest.catalog_maps import KINDS
from ._common import DEFAULT_WAREHOUSE, Sets, Warehouse, fail

app = typer.Typer(help="Load LAMOST spectra, catalogues and reference libraries. Exit status 3 when anything was "
                       "rejected (see meta.ingest_errors); the good data still lands.",
                  no_args_is_help=True)

EXIT_REJECTED = 3


def _finish(report) -> None:
    typer.echo(report.summary())
    if report.rejected:
        raise typer.Exit(EXIT_REJECTED)


@app.command()
def lamost(
    paths: Annotated[list[Path], typer.Argument(help="FITS files (.fits, .fits.gz), folders "
                                                     "(searched recursively), globs, or Parquet "
                                                     "spectra tables from `mgold synth make`.")],
    warehouse: Warehouse = DEFAULT_WAREHOUSE,
    workers: Annotated[int | None, typer.Option(help="Parallel reader processes "
                                                     "(default: ingest.workers).")] = None,
    set_: Sets = None,
) -> None:
    """Ingest LAMOST low-resolution spectra: every release layout (DR1 pilot image,
    DR2-DR8 5-row image, DR9+ COADD table). Medium-resolution files are refused.
    Re-ingesting a file already loaded (same sha256) is a no-op.

    Example: mgold ingest lamost ../shared/data/real/lamost -w w.duckdb
    """
    from ..ingest.lamost import ingest_lamost

    cfg = DEFAULT.with_overrides(set_)
    _finish(ingest_lamost(paths, warehouse, cfg, workers=workers))


@app.command()
def catalog(
    kind: Annotated[str, typer.Argument(help="One of: " + ", ".join(KINDS))],
    paths: Annotated[list[Path], typer.Argument(help="FITS, CSV, Parquet or VOTable files "
                                                     "(PARSEC .dat for isochrones).")],
    warehouse: Warehouse = DEFAULT_WAREHOUSE,
) -> None:
    """Ingest an external catalogue into landing.KIND through its declarative column map
    (README: "Catalogue column maps"). Sentinels (-9999, 9999, 99999; 99 for
    magnitudes) and NaN/inf become NULL.

    Example: mgold ingest catalog aspcap allStar-dr17.fits -w w.duckdb
    """
    from ..ingest.catalog import ingest_catalog

    if kind not in KINDS:
        typer.echo(f"mgold: error: unknown catalogue kind {kind!r}; choose one of "
                   f"{', '.join(KINDS)}", err=True)
        raise typer.Exit(2)
    _finish(ingest_catalog(kind, paths, warehouse))


@app.command()
def library(
    kind: Annotated[str, typer.Argument(help="Library kind; one of: miles.")],
    paths: Annotated[list[Path], typer.Argument(help="Library folders (searched recursively) or "
                                                     "files: MILES *.fits spectra and MILES_params.db.")],
    warehouse: Warehouse = DEFAULT_WAREHOUSE,
    set_: Sets = None,
) -> None:
    """Ingest a reference spectral library for LASPM into landing.library_spectra: vacuum
    wavelengths, degraded to R = library.resolving_power, resampled onto the red grid
    (spectra.red_wave_*), pixels outside the library's coverage masked, ivar from
    library.assumed_snr. Re-ingesting a library replaces its rows; stars with missing labels
    land with NULL labels and a warning.

    Example: mgold ingest library miles ../shared/data/real/libraries/miles_k_m_stars -w w.duckdb
    """
    from ..ingest.library import LIBRARIES, ingest_library
    from ..warehouse import connect

    if kind not in LIBRARIES:
        fail(f"unknown library kind {kind!r}; choose one of {', '.join(LIBRARIES)}", 2)
    cfg = DEFAULT.with_overrides(set_)
    con = connect(warehouse)
    try:
        report = ingest_library(con, kind, paths, cfg)
    except ValueError as e:
        fail(str(e))
    finally:
        con.close()
    _finish(report)
