"""`mgold export`: the published data products."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import MgoldError, UsageError
from ._common import DEFAULT_WAREHOUSE, Warehouse, reading

app = typer.Typer(help="Export data products: the golden sample as FITS and Parquet.", no_args_is_help=True)


@app.command("golden")
def golden_cmd(warehouse: Warehouse = DEFAULT_WAREHOUSE,
               fits: Annotated[Path | None, typer.Option("--fits", help="FITS file to write: spectra in the "
                                                         "primary HDU, IVAR, WAVELENGTH, CATALOG.")] = None,
               parquet: Annotated[Path | None, typer.Option("--parquet", help="Parquet file to write (the same "
                                                            "content, one row per spectrum).")] = None,
               grid: Annotated[str, typer.Option("--grid", help="cluster: 3900-8800 AA, as the paper's product; "
                                                               "red: 6000-8800 AA, LASPM's.")] = "cluster",
               overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing files.")] = False
               ) -> None:
    """The golden sample (gold_sample) and its rest-frame, recalibrated spectra as the paper's product:
    FITS with the spectra as the primary image (n_stars x n_pixels, log-linear wavelength WCS), ivar
    and wavelength HDUs and the catalogue as a BINTABLE with units, checksums written; and/or Parquet
    with the same content. Each file is written under a temporary name and renamed.

    Example: mgold export golden -w demo/warehouse.duckdb --fits golden.fits --parquet golden.parquet
    """
    from ..export import golden_from_warehouse, write_golden_fits, write_golden_parquet
    from ..warehouse import git_rev

    if fits is None and parquet is None:
        raise UsageError("give --fits PATH and/or --parquet PATH")
    with reading(warehouse) as con:
        try:
            p = golden_from_warehouse(con, grid)
        except ValueError as e:
            raise MgoldError(f"{warehouse}: {e}") from None
        run = con.execute("select run_id from meta.model_runs where model = 'gold_sample' and status = 'built' "
                          "order by finished_at desc limit 1").fetchone()
    header = {"GRID": (grid, "cluster 3900-8800 AA, red 6000-8800 AA"),
              "RUN_ID": ((run[0] if run else "unknown")[:40], "run that built gold_sample")}
    rev = git_rev()
    if rev:
        header["GIT_REV"] = (rev[:40], "mgold revision")
    written = []
    try:
        if fits is not None:
            written.append(write_golden_fits(fits, p.flux, p.ivar, p.loglam0, p.dloglam, p.catalog, p.units,
                                             p.flux_unit, header, overwrite=overwrite))
        if parquet is not None:
            written.append(write_golden_parquet(parquet, p.flux, p.ivar, p.loglam0, p.dloglam, p.catalog, p.units,
                                                p.flux_unit, overwrite=overwrite))
    except (FileExistsError, FileNotFoundError) as e:
        raise UsageError(str(e)) from None
    except ValueError as e:
        raise MgoldError(str(e)) from None
    for path in written:
        typer.echo(f"wrote {path}: {p.flux.shape[0]:,} spectra x {p.flux.shape[1]:,} pixels")
