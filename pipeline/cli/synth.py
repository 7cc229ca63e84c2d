"""`mgold synth`: make and validate the synthetic universe."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import Sets, fail

app = typer.Typer(help="Synthetic LAMOST-DR11-like universe: make, validate.", no_args_is_help=True)

DEFAULT_REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"


@app.command()
def make(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (manifest.json, lamost/, "
                                                          "catalogs/, truth/).")],
    preset: Annotated[str, typer.Option(help="tiny, demo, paper or dr11.")] = "tiny",
    seed: Annotated[int, typer.Option(help="Seed: same seed + preset give byte-identical files.")] = 42,
    format_: Annotated[str, typer.Option("--format", help="Spectra as parquet batches or one "
                                                          "DR9+ FITS file per spectrum (fits).")] = "parquet",
    set_: Sets = None,
) -> None:
    """Write a seeded synthetic universe in the real formats: LAMOST spectra and
    M-type catalogue, Gaia EDR3, Bailer-Jones, 3D dust, StarHorse, APOGEE allStar,
    Qiu23, Ding22, old LASPM, variable-star lists, the model-SED grid, and the
    ground truth. Any offset, rate or noise level can be overridden with --set.

    Example: mgold synth make --preset tiny --seed 7 --out demo/universe --set synth.aspcap.dwarf.teff_k=120
    """
    from ..synth.make import make as run_make
    from ..synth.presets import config_for

    try:
        cfg = config_for(preset, seed, set_)
        manifest = run_make(cfg, out, format_)
    except (KeyError, ValueError) as exc:
        fail(str(exc.args[0]) if exc.args else str(exc))
    typer.echo(f"wrote {manifest}")


@app.command()
def validate(
    real: Annotated[Path, typer.Option(help="Folder of real data (MILES, Pickles, LAMOST).")] = DEFAULT_REAL,
    k_folds: Annotated[int, typer.Option(help="Folds: each MILES star is scored by a generator "
                                              "fitted without it.")] = 5,
) -> None:
    """Print the realism figure of the spectrum generator on MILES M/K stars (k-fold),
    beside the blackbody and nearest-neighbour baselines.

    Example: mgold synth validate --real ../shared/data/real --k-folds 5
    """
    if not real.is_dir():
        fail(f"real data folder not found: {real} (give --real DIR)")
    from ..synth.validate import main

    raise typer.Exit(main(real, k_folds))
