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

PAPER_MIX = {"synth.giant_fraction": 0.13, "synth.ding22.coverage": 0.68, "synth.aspcap.coverage": 0.06,
             "synth.qiu23.coverage": 0.5}
# a release fits ~1M spectra: one golden template per parameter bin (the paper's library was 1,365
# spectra) instead of every golden spectrum (~4k at paper scale) keeps LASPM near 400 spectra/s
RELEASE_LASPM = {"laspm.golden_subset": "best_per_bin"}

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"synth.n_stars": 2500, "synth.spectra_per_file": 2000},
    "demo": {"synth.n_stars": 16000},
    # the paper's mix of label sources (§2.2: Ding22 53.7%, LASPM 31.3%, ASPCAP 9.2%, Qiu23 5.8% of
    # 45,422): M giants 13% of the M stars, ASPCAP covering 6% of them, Ding22 68% of the dwarfs, Qiu23
    # 50% of the giants. The full 680k-star run with Qiu23 at 60% gave 47,349 labelled (7.0% of the stars)
    # split 52.5 / 31.2 / 9.4 / 7.0% (Qiu23 +21% relative; docs/paper_scale.md); at 50%, measured on
    # 96,000 stars: 54.4 / 31.1 / 8.7 / 5.8% of 6,605, each within 6% of the paper's. tiny / demo keep the
    # defaults (more giants and ASPCAP stars: every offset measurable at small sizes)
    "paper": {"synth.n_stars": 680000, **PAPER_MIX, **RELEASE_LASPM},
    # a 400k-star universe (~25k labelled) plus unlabelled stars up to ~900,000 spectra (§4)
    "dr11": {"synth.n_stars": 400000, "synth.n_dr11_spectra": 280000, **PAPER_MIX, **RELEASE_LASPM},
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
