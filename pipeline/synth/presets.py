"""Presets of the synthetic universe: dicts of ``synth.*`` config overrides.

``tiny`` runs the whole pipeline in well under a minute (tests), ``demo`` a few
minutes on 2 cores (``make demo``), ``paper`` gives about 45,000 labelled stars
after cuts like paper §2.2, ``dr11`` streams ~900,000 M spectra for LASPM.
User ``--set`` overrides are applied after the preset, so any offset, rate or
noise level can still be changed.
"""

from __future__ import annotations

from typing import Any

from mgold.pipeline.config import DEFAULT, Config

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"synth.n_stars": 2500, "synth.spectra_per_file": 2000},
    "demo": {"synth.n_stars": 16000},
    # 6.4% of stars end up labelled after the S/N, photometry/ruwe/variable, CMD-box and
    # delta-vs-StarHorse cuts (measured with the default noise, StarHorse ~140 K at G = 14:
    # 1,022 of 16,000 on demo; it scaled linearly from 16k to 96k stars before the C* fix of
    # the generator raised it from 5.3%), so ~705k stars (~1.1M spectra) give ~45k (§2.2);
    # per spectrum (4%) that is close to the paper's ~45k out of ~0.9-1M DR11 M spectra
    "paper": {"synth.n_stars": 705000},
    # a 400k-star universe (~25k labelled) plus unlabelled stars up to ~900,000 spectra (§4)
    "dr11": {"synth.n_stars": 400000, "synth.n_dr11_spectra": 280000},
}


# measured bytes per stored spectrum (3,909 px): Parquet in the landing layout (zstd + byte-stream-split,
# pipeline/bench/storage.py: 23.7 kB synthetic), a DR9+ FITS file (5 float32 rows + header), and per
# labelled spectrum the two processed grids of the spectra layer in the DuckDB file (~5,200 float32 pairs)
BYTES_PER_SPECTRUM = {"parquet": 24_000, "fits": 85_000}
BYTES_PER_LABELLED = 45_000
LABELLED_FRACTION = 0.064          # of stars (see the paper preset above)


def expected_spectra(cfg: Config) -> int:
    """About how many spectra the universe of ``cfg`` has (visits of its stars + the dr11 extras)."""
    from .stars import _mean_repeat_visits

    s = cfg.synth
    mean_visits = 1.0 + s.repeat_fraction * (_mean_repeat_visits(s) - 1.0)
    return int(s.n_stars * mean_visits + s.n_dr11_spectra)


def disk_needed_bytes(cfg: Config, fmt: str) -> int:
    """Disk a build of this universe needs at most: the inputs (adopted into the warehouse when Parquet,
    copied when FITS), the labelled spectra's grids, and 10% for tables and the DuckDB file."""
    n = expected_spectra(cfg)
    spectra = n * BYTES_PER_SPECTRUM[fmt] + (n * BYTES_PER_SPECTRUM["parquet"] if fmt == "fits" else 0)
    return int(1.1 * (spectra + LABELLED_FRACTION * cfg.synth.n_stars * BYTES_PER_LABELLED))


def config_for(preset: str, seed: int | None = None, sets: list[str] | dict | None = None,
               base: Config = DEFAULT) -> Config:
    """``base`` with the preset's overrides, ``synth.preset``/``synth.seed``, then ``sets``."""
    if preset not in PRESETS:
        raise KeyError(f"unknown synth preset {preset!r}; choices: {', '.join(PRESETS)}")
    overrides = dict(PRESETS[preset])
    overrides["synth.preset"] = preset
    if seed is not None:
        overrides["synth.seed"] = seed
    return base.with_overrides(overrides).with_overrides(sets)
