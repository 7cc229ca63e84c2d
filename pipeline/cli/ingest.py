"""`mgold ingest`: LAMOST spectra files, external catalogues and reference libraries into a warehouse."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import EXIT_REJECTED, UsageError
from ..ingest.catalog_maps import KINDS
from ._common import DEFAULT_WAREHOUSE, Sets, Wait, Warehouse, config, writing

app = typer.Typer(help="Load LAMOST spectra, catalogues and reference libraries. Exit status 3 when anything was "
                       "rejected (see meta.ingest_errors); the good data still lands.",
                  no_args_is_help=True)


def _finish(report) -> None:
    typer.echo(report.summary())
    if report.rejected:
        raise typer.Exit(EXIT_REJECTED)


def _require_paths(paths: list[Path]) -> None:
    """A path that does not exist (and is no glob) is bad usage, before anything is opened."""
    missing = [p for p in paths if not p.exists() and not any(ch in str(p) for ch in "*?[")]
    if missing:
        raise UsageError(f"{missing[0]}: no such file or folder")


def _ingest_kind(what: str, kind: str, known, ingest, paths: list[Path], warehouse: Path, set_, wait: bool) -> None:
    """``mgold ingest catalog|library KIND PATH...``: check the kind and paths, then one locked ingest."""
    if kind not in known:
        raise UsageError(f"unknown {what} kind {kind!r}; choose one of {', '.join(known)}")
    cfg = config(set_)
    _require_paths(paths)
    with writing(warehouse, wait) as con:
        report = ingest(con, kind, paths, cfg)
    _finish(report)


@app.command()
def lamost(
    paths: Annotated[list[Path], typer.Argument(help="FITS files (.fits, .fits.gz), folders "
                                                     "(searched recursively), globs, or Parquet "
                                                     "spectra tables from `mgold synth make`.")],
    warehouse: Warehouse = DEFAULT_WAREHOUSE,
    workers: Annotated[int | None, typer.Option(help="Parallel reader processes "
                                                     "(default: ingest.workers).")] = None,
    set_: Sets = None,
    wait: Wait = False,
) -> None:
    """Ingest LAMOST low-resolution spectra: every release layout (DR1 pilot image,
    DR2-DR8 5-row image, DR9+ COADD table). Medium-resolution files are refused.
    Re-ingesting a file already loaded (same sha256) is a no-op. A warehouse holding a
    synthetic universe is refused (real and synthetic data are never mixed).

    Example: mgold ingest lamost ../shared/data/real/lamost -w w.duckdb
    """
    from ..ingest.lamost import ingest_lamost

    cfg = config(set_)
    _require_paths(paths)
    with writing(warehouse, wait) as con:
        report = ingest_lamost(con, paths, cfg, workers=workers)
    _finish(report)


@app.command()
def catalog(
    kind: Annotated[str, typer.Argument(help="One of: " + ", ".join(KINDS))],
    paths: Annotated[list[Path], typer.Argument(help="FITS, CSV, Parquet or VOTable files "
                                                     "(PARSEC .dat for isochrones).")],
    warehouse: Warehouse = DEFAULT_WAREHOUSE,
    set_: Sets = None,
    wait: Wait = False,
) -> None:
    """Ingest an external catalogue into landing.KIND through its declarative column map
    (README: "Catalogue column maps"). Sentinels (-9999, 9999, 99999; 99 for
    magnitudes) and NaN/inf become NULL.

    Example: mgold ingest catalog aspcap allStar-dr17.fits -w w.duckdb
    """
    from ..ingest.catalog import ingest_catalog

    _ingest_kind("catalogue", kind, KINDS, ingest_catalog, paths, warehouse, set_, wait)


@app.command()
def library(
    kind: Annotated[str, typer.Argument(help="Library kind; one of: miles.")],
    paths: Annotated[list[Path], typer.Argument(help="Library folders (searched recursively) or "
                                                     "files: MILES *.fits spectra and MILES_params.db.")],
    warehouse: Warehouse = DEFAULT_WAREHOUSE,
    set_: Sets = None,
    wait: Wait = False,
) -> None:
    """Ingest a reference spectral library for LASPM into landing.library_spectra: vacuum
    wavelengths, degraded to R = library.resolving_power, resampled onto the red grid
    (spectra.red_wave_*), pixels outside the library's coverage masked, ivar from
    library.assumed_snr. Re-ingesting a library replaces its rows; stars with missing labels
    land with NULL labels and a warning.

    Example: mgold ingest library miles ../shared/data/real/libraries/miles_k_m_stars -w w.duckdb
    """
    from ..ingest.library import LIBRARIES, ingest_library

    _ingest_kind("library", kind, LIBRARIES, ingest_library, paths, warehouse, set_, wait)
