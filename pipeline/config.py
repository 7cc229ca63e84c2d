"""The one typed configuration of mgold.

Every tunable of the paper (cuts, bin sizes, eps, minPts rule, caps, priorities,
wavelength windows, polynomial orders) and of the synthetic universe lives here,
once. SQL models read values with ``getvariable('section.key')``; the runner binds
every flattened key before a build and records them in ``meta.run_parameters``.
Offsets between catalogues are *measured* by the pipeline, never typed in here;
the only offsets below are the ones the synthetic universe *injects*.

Override from the CLI with ``--set section.key=value`` (dotted paths, values
parsed as JSON when possible, else as strings).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class IngestConfig:
    workers: int = 2                 # processes reading FITS files in parallel
    # fewer FITS files than this are read in-process: starting the pool costs ~0.8 s on 2 cores
    # and the parent (Parquet writing) is the bottleneck, so the pool pays from ~4,000 files
    # (measured: 1,500 files 1.6 s serial vs 2.0 s pooled; 6,000 files 6.2 s vs 5.6 s)
    pool_min_files: int = 4000
    spectra_per_row_group: int = 2000  # Parquet row-group size for spectra
    spectra_per_file: int = 20000    # spectra per Parquet part file
    loglinear_rtol: float = 1e-6     # tolerance when verifying a log-linear wavelength grid
    catalog_batch_rows: int = 100_000  # catalogue rows read, cast and landed per batch (bounds memory)


@dataclass(frozen=True)
class XmatchConfig:
    radius_arcsec: float = 1.5          # positional LAMOST x Gaia radius (after epoch propagation)
    catalog_radius_arcsec: float = 1.5  # positional radius for label catalogues without ids
    zone_height_deg: float = 0.05       # declination zone height of the zones algorithm
    lamost_epoch_yr: float = 2016.0     # fallback observation epoch when lmjd is absent
    max_mag_diff: float = 2.0           # tie-break: |G - expected| used after separation
    catalog_epoch_yr: float = 2000.0    # epoch of label-catalogue positions (2MASS-based ASPCAP, variable lists)


@dataclass(frozen=True)
class SelectConfig:
    # paper §2.1
    snr_i_min: float = 10.0
    # photometric quality / unresolved binaries, in the spirit of Qu et al. (2024)
    ruwe_max: float = 1.4
    parallax_over_error_min: float = 5.0
    bp_rp_excess_nsigma_max: float = 3.0   # |C*| / sigma_C*(G) (Riello et al. 2021)
    # extinction coefficients A_X / A_V for the Gaia bands (Casagrande & VandenBerg 2018-like)
    a_g_per_av: float = 0.789
    a_bp_per_av: float = 1.002
    a_rp_per_av: float = 0.589
    dust_rv: float = 3.1                   # A_V = R_V * E(B-V) when the dust map gives only E(B-V)
    # paper §2.1.1 dwarfs
    dwarf_dist_max_kpc: float = 2.0
    dwarf_abs_g_min_mag: float = 7.0
    dwarf_abs_g_max_mag: float = 12.0
    dwarf_fit_order: int = 1
    # paper §2.1.2 giants
    giant_dist_max_kpc: float = 5.0
    giant_bp_rp_min_mag: float = 1.25
    giant_bp_rp_max_mag: float = 4.0
    giant_fit_order: int = 3
    cmd_color_step_mag: float = 0.5        # colour step for mean / 1 sigma of M_G
    cmd_min_stars_per_step: int = 5
    cmd_clip_nsigma: float = 3.0           # per-step clip around the median (1.4826 MAD): mislabelled dM/gM hints


@dataclass(frozen=True)
class LabelsConfig:
    # robust Gaussian fit of (catalogue - StarHorse), paper Figs 3-4
    offset_clip_nsigma: float = 3.0
    offset_clip_iterations: int = 10
    offset_min_stars: int = 10
    # paper §2.2.1 / §2.2.2 delta cuts after shifting
    dwarf_max_dteff_k: float = 100.0
    dwarf_max_dlogg_dex: float = 0.2
    dwarf_max_dmh_dex: float = 0.2
    giant_max_dteff_k: float = 70.0
    giant_max_dlogg_dex: float = 0.2
    giant_max_dmh_dex: float = 0.2
    # priority transfer, highest first
    dwarf_priority: tuple[str, ...] = ("aspcap", "ding22", "laspm")
    giant_priority: tuple[str, ...] = ("aspcap", "qiu23")
    # paper §2.2.3 supplement
    supplement_snr_min: float = 50.0
    supplement_teff_err_max_k: float = 10.0
    supplement_logg_err_max_dex: float = 0.05
    supplement_mh_err_max_dex: float = 0.02
    supplement_dwarf_logg_min_dex: float = 3.5   # class of a supplement star outside both CMD boxes (paper Fig. 5)
    # ASPCAP quality: a row is usable when (STARFLAG & mask) == 0 and (ASPCAPFLAG & mask) == 0
    aspcap_starflag_mask: int = 0
    aspcap_aspcapflag_mask: int = 8388608   # bit 23 STAR_BAD


@dataclass(frozen=True)
class SpectraConfig:
    # LAMOST LRS native log grid (paper §2.3.1: 69 km/s pixels)
    loglam0_native: float = 3.5682
    dloglam: float = 1e-4
    # common rest-frame grids (paper §2.4, §2.5)
    cluster_wave_min_aa: float = 3900.0
    cluster_wave_max_aa: float = 8800.0
    red_wave_min_aa: float = 6000.0
    red_wave_max_aa: float = 8800.0
    # SED recalibration (paper §2.3.2)
    sedcal_poly_order: int = 2
    sedcal_clip_nsigma: float = 3.0
    sedcal_iterations: int = 5
    batch_spectra: int = 2048


@dataclass(frozen=True)
class CleanConfig:
    # paper §2.4
    bin_teff_k: float = 50.0
    bin_logg_dex: float = 0.1
    bin_mh_dex: float = 0.1
    top_n_per_bin: int = 150
    dbscan_eps: float = 1.0

    # minPts rule: min_pts = clip(n // minpts_stars_per_point, minpts_min, minpts_max)
    minpts_min: int = 2
    minpts_max: int = 5
    minpts_stars_per_point: int = 4

    cap_per_bin: int = 7             # paper §2.4: at most 7 spectra kept per bin
    figure_eps_alt: float = 2.0      # paper Fig. 6 compares eps 1.0 with 2.0

    # the DBSCAN distance (stages/clean.py): noise-debiased squared Euclidean distance of the
    # median-normalised spectra, a weighted mean over common good pixels times dist_ref_pix, the
    # paper grid's pixel count; 0 -> the 3900-8800 AA clustering grid at LAMOST sampling (the
    # grid the paper's eps = 1.0 was set on)
    dist_ref_pix: int = 0

    # pixels noisier than this (median-normalised flux) weigh by inverse variance, more precise
    # ones equally, so high-S/N pairs get plain Euclidean distance; 0 = pure inverse variance
    dist_weight_floor: float = 0.02

    min_good_pix_frac: float = 0.5   # fewer good pixels (of one spectrum, or common to a pair) -> no distance

    # before distances: each spectrum / a polynomial fitted to its ratio to its bin's median
    # spectrum (0 = off); the reference shares the bin's labels, so no model mismatch
    bin_recal_order: int = 3

    # that polynomial is fitted separately on each side of this wavelength (AA, vacuum; 0 = one
    # polynomial): the LAMOST blue/red arm join, whose flux step no low-order polynomial follows
    bin_recal_split_aa: float = 5800.0

    # add that polynomial's own uncertainty (least-squares covariance) to each pixel's variance:
    # where it is extrapolated (the faint blue end of a low-S/N spectrum) the pixels weigh little
    bin_recal_variance: bool = True

    # iterative rejection in that fit, in rms-of-chi units (0 = none, one weighted fit): clipping
    # against a noisy small-bin median rejects pixels by their noise and biases the extrapolated
    # blue end; lines need no clipping here (the reference shares them)
    bin_recal_clip_nsigma: float = 0.0

    # telluric bands (AA, vacuum, lo/hi pairs) left out of distances: atmosphere, not star
    telluric_windows_aa: tuple[float, ...] = (6860.0, 6935.0, 7150.0, 7350.0, 7585.0, 7705.0,
                                              8120.0, 8360.0)

    # strong night-sky lines (AA, vacuum, observed frame: [O I], Na D, OH) whose imperfect
    # subtraction leaves residuals larger than ivar says: left out of distances
    sky_lines_aa: tuple[float, ...] = (5578.9, 5891.6, 5897.6, 6302.0, 6365.5, 7278.4, 7318.2, 7342.9,
                                       7371.5, 7794.1, 7823.8, 7915.5, 7966.9, 7995.6, 8346.9, 8401.6,
                                       8432.5, 8467.7, 8507.7, 8829.7, 8888.2, 8922.2, 8945.5, 8990.9)
    sky_halfwidth_aa: float = 6.0    # +- this around each sky line, moved to the rest frame by the RV (0 = keep)


@dataclass(frozen=True)
class CatalogSystematics:
    """Injected systematic offsets (catalogue - truth) of one catalogue x class."""

    teff_k: float = 0.0
    logg_dex: float = 0.0
    mh_dex: float = 0.0


@dataclass(frozen=True)
class CatalogNoise:
    teff_k: float = 30.0
    logg_dex: float = 0.05
    mh_dex: float = 0.05


@dataclass(frozen=True)
class SynthCatalog:
    coverage: float = 0.1          # fraction of stars of the class the catalogue covers
    dwarf: CatalogSystematics = CatalogSystematics()
    giant: CatalogSystematics = CatalogSystematics()
    noise: CatalogNoise = CatalogNoise()
    outlier_rate: float = 0.02     # catastrophic outliers


@dataclass(frozen=True)
class SynthConfig:
    seed: int = 42
    preset: str = "tiny"
    n_stars: int = 3000
    giant_fraction: float = 0.35
    repeat_fraction: float = 0.25      # stars observed more than once
    max_visits: int = 10
    binary_fraction: float = 0.10
    variable_fraction: float = 0.03
    metal_poor_fraction: float = 0.05  # [M/H] < -0.5
    # label catalogues: coverage, injected offsets (shaped like paper Figs 3-4), noise, outliers
    aspcap: SynthCatalog = SynthCatalog(
        coverage=0.12,
        dwarf=CatalogSystematics(87.0, 0.0, 0.0),
        giant=CatalogSystematics(60.0, 0.05, 0.03),
        noise=CatalogNoise(25.0, 0.05, 0.03),
        outlier_rate=0.01,
    )
    qiu23: SynthCatalog = SynthCatalog(
        coverage=0.45,
        giant=CatalogSystematics(60.0, 0.05, 0.03),
        noise=CatalogNoise(35.0, 0.08, 0.05),
    )
    ding22: SynthCatalog = SynthCatalog(
        coverage=0.55,
        dwarf=CatalogSystematics(-40.0, 0.05, -0.10),
        noise=CatalogNoise(40.0, 0.08, 0.08),
    )
    laspm: SynthCatalog = SynthCatalog(
        coverage=0.7,
        dwarf=CatalogSystematics(0.0, 0.27, -0.25),
        noise=CatalogNoise(60.0, 0.12, 0.12),
        outlier_rate=0.04,
    )
    starhorse_coverage: float = 0.95
    starhorse_teff_noise_k_at_g14: float = 140.0
    starhorse_logg_noise_dex: float = 0.12
    starhorse_mh_noise_dex: float = 0.2
    starhorse_mh_grid_step_dex: float = 0.1   # the stripes of paper Fig. 18
    gaia_id_fraction: float = 0.6             # LAMOST rows that carry gaia_source_id
    # spectra
    snr_i_median: float = 30.0
    flux_calib_distortion: float = 0.10       # ~10% smooth low-order distortion
    rv_sigma_kms: float = 40.0
    rv_error_kms: float = 5.0
    bad_pixel_rate: float = 0.002
    # injected defects, per spectrum
    defect_swapped_labels_rate: float = 0.02
    defect_wrong_object_rate: float = 0.02
    defect_broken_segment_rate: float = 0.02
    defect_cosmic_ray_rate: float = 0.05
    defect_wrong_rv_rate: float = 0.02
    n_dr11_spectra: int = 0                    # extra unlabelled M spectra for LASPM (dr11 preset)
    # stars: distances, dust, kinematics, photometry (see pipeline/synth/stars.py)
    dwarf_dist_scale_pc: float = 300.0         # gamma(k=3) scale: dwarfs mostly < 2 kpc
    giant_dist_scale_pc: float = 1300.0        # giants reach beyond 5 kpc
    dust_av_per_kpc: float = 0.7               # A_V per kpc in the plane of the 3D dust slab
    dust_scale_height_pc: float = 150.0
    tangential_velocity_sigma_kms: float = 35.0
    binary_max_excess_mag: float = 0.75        # unresolved binaries: up to 0.75 mag over-luminous
    g_mag_min: float = 9.0                     # LAMOST LRS magnitude range of the M sample
    g_mag_max: float = 17.8
    ext_g_per_av: float = 0.789                # true extinction coefficients of the universe
    ext_bp_per_av: float = 1.002
    ext_rp_per_av: float = 0.589
    # catalogues
    aspcap_err_lognormal_sigma: float = 0.5    # spread of reported ASPCAP errors (supplement, §2.2.3)
    aspcap_flagged_rate: float = 0.04          # STAR_BAD rows
    aspcap_sentinel_rate: float = 0.02         # rows with -9999 labels
    variable_list_completeness: float = 0.9    # true variables present in the variable lists
    lamost_astrometry_sigma_arcsec: float = 0.15
    # observations
    snr_i_lognormal_sigma: float = 0.6         # visit-to-visit S/N spread (some fall below 10)
    lmjd_min: int = 55900                      # LAMOST pilot survey, late 2011
    lmjd_max: int = 60400                      # 2024
    flux_counts_at_g15: float = 400.0          # LAMOST-like counts of a G = 15 star at 7450 A
    flux_calib_order: int = 3                  # Legendre order of the calibration distortion
    telluric_depth: float = 0.25               # uncorrected telluric absorption depth
    sky_residual_sigma: float = 3.0            # sky-line residual amplitude, in units of the pixel noise
    join_mismatch: float = 0.04                # blue/red arm flux mismatch near 5700-5900 A
    spectra_per_file: int = 4000               # rows per spectra Parquet file (= generation batch)
    # Parquet codec of synthetic spectra files, written otherwise with the ingest writer's options
    # (lamost.PARQUET_OPTIONS, BYTE_STREAM_SPLIT floats); the default is that writer's codec, so the
    # files are in the landing layout. Measured: 23.8 kB/spectrum vs 47.1 kB with "none", same
    # generation wall time (writes overlap generation), ~15% more CPU
    spectra_compression: str = "zstd"


@dataclass(frozen=True)
class Config:
    ingest: IngestConfig = IngestConfig()
    xmatch: XmatchConfig = XmatchConfig()
    select: SelectConfig = SelectConfig()
    labels: LabelsConfig = LabelsConfig()
    spectra: SpectraConfig = SpectraConfig()
    clean: CleanConfig = CleanConfig()
    synth: SynthConfig = SynthConfig()

    def flat(self) -> dict[str, Any]:
        """Every leaf as ``{'section.key': value}``; nested sections join with dots."""
        return _flatten(dataclasses.asdict(self))

    def hash_of(self, keys: list[str] | tuple[str, ...] | set[str]) -> str:
        """sha256 of the values of ``keys``: a model is stale when this changes."""
        flat = self.flat()
        missing = sorted(k for k in keys if k not in flat)
        if missing:
            raise KeyError(f"unknown config key(s): {', '.join(missing)}")
        payload = json.dumps({k: flat[k] for k in sorted(keys)}, sort_keys=True, default=list)
        return hashlib.sha256(payload.encode()).hexdigest()

    def with_overrides(self, overrides: dict[str, Any] | list[str] | None) -> "Config":
        """Return a copy with dotted-key overrides applied (``['a.b=1']`` or ``{'a.b': 1}``)."""
        if not overrides:
            return self
        if isinstance(overrides, list):
            overrides = dict(parse_assignment(s) for s in overrides)
        cfg = self
        for key, value in overrides.items():
            cfg = _replace_path(cfg, key.split("."), value, key)
        return cfg


def parse_assignment(text: str) -> tuple[str, Any]:
    """``'synth.aspcap.dwarf.teff_k=120'`` -> ``('synth.aspcap.dwarf.teff_k', 120)``."""
    if "=" not in text:
        raise ValueError(f"--set expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = list(v) if isinstance(v, tuple) else v
    return out


def _replace_path(obj: Any, path: list[str], value: Any, full: str) -> Any:
    names = {f.name: f for f in dataclasses.fields(obj)}
    head = path[0]
    if head not in names:
        raise KeyError(f"unknown config key {full!r} (no {head!r} in {type(obj).__name__}; "
                       f"choices: {', '.join(sorted(names))})")
    current = getattr(obj, head)
    if len(path) > 1:
        if not dataclasses.is_dataclass(current):
            raise KeyError(f"unknown config key {full!r}: {head!r} is a value, not a section")
        return dataclasses.replace(obj, **{head: _replace_path(current, path[1:], value, full)})
    if dataclasses.is_dataclass(current):
        raise KeyError(f"config key {full!r} is a section; set one of its fields")
    return dataclasses.replace(obj, **{head: _coerce(current, value, full)})


def _coerce(current: Any, value: Any, key: str) -> Any:
    try:
        if isinstance(current, bool):
            if isinstance(value, str):
                return value.lower() in ("1", "true", "yes")
            return bool(value)
        if isinstance(current, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if isinstance(current, float):
            return float(value)
        if isinstance(current, tuple):
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            return tuple(value)
        return type(current)(value)
    except (TypeError, ValueError):
        raise ValueError(f"config key {key!r} expects {type(current).__name__}, got {value!r}") from None


DEFAULT = Config()
