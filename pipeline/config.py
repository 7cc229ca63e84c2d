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
from dataclasses import dataclass
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
    # a Parquet spectra table already in the landing layout (the synthetic universe's) whose rows are all
    # clean becomes a landing part by a hard link: each spectrum stored once (issue 13)
    adopt_spectra_tables: bool = True

    # spectra with fewer pixels are refused: LAMOST LRS spectra have ~3900 (3751-3909 in the 293
    # real LRS files of ../shared/data/real, all layouts), so a much shorter one is a cut or a stamp
    min_pixels: int = 3000


@dataclass(frozen=True)
class DuckdbConfig:
    # the warehouse database's working memory (DuckDB memory_limit; larger joins and sorts spill to
    # <warehouse>.tmp): with the Python stages' own arrays a build stays under ~4 GB at any preset
    memory_limit_gb: float = 2.5


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
class LabelCatalog:
    """One label catalogue of paper §2.2: adding a catalogue is one of these plus a column map
    (``pipeline/ingest/catalog_maps.py``) whose ``landing`` is ``obsid_labels`` (README)."""

    key: str                       # the ingest kind and the ``catalog`` / ``label_source`` value
    display_name: str              # as the paper and the reports name it
    classes: tuple[str, ...]       # which of 'dwarf', 'giant' it labels
    keyed_by: str = "obsid"        # 'obsid' (a LAMOST spectrum) or 'position' (APOGEE: matched on the sky)


@dataclass(frozen=True)
class LabelsConfig:
    # the label catalogues (§2.2); their priority per class is dwarf_priority / giant_priority below
    catalogs: tuple[LabelCatalog, ...] = (
        LabelCatalog("aspcap", "ASPCAP", ("dwarf", "giant"), "position"),
        LabelCatalog("qiu23", "Qiu23", ("giant",)),
        LabelCatalog("ding22", "Ding22", ("dwarf",)),
        LabelCatalog("laspm", "LASPM", ("dwarf",)),
    )
    supplement_catalog: str = "aspcap"   # §2.2.3: the catalogue whose precise labels make the supplement
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
class LibraryConfig:
    # reference libraries for LASPM (`mgold ingest library`), brought onto the red grid
    resolving_power: float = 1800.0  # LAMOST LRS R: libraries are degraded to FWHM lambda / R (Gaussian LSF)
    edge_lsf_sigmas: float = 3.0     # pixels closer than this many LSF sigmas to a library's wavelength end are masked

    # libraries without errors (MILES, model grids): photon-noise ivar, S/N = this at the median flux
    assumed_snr: float = 100.0


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

    # suggestions for the bins DBSCAN could not settle (stages/suggest.py): cln_kept accepts every
    # suggestion at least this confident unless a person decided that spectrum (1 = none accepted)
    suggestion_min_confidence: float = 0.9
    # fewest reference pairs of one class to fit that class's own label gradient (else all classes pooled)
    suggestion_min_pairs: int = 50


@dataclass(frozen=True)
class ReportConfig:
    """What `mgold report html` draws; no model reads these (paper Figs 10-13)."""

    isochrone_age_gyr: float = 3.0   # paper Fig. 10: PARSEC isochrones at 3 Gyr (nearest ingested age used)
    isochrone_mh_dex: tuple[float, ...] = (-0.6, -0.2, 0.2)   # paper Fig. 10: red, blue, black (nearest ingested [M/H])
    isochrone_z_sun: float = 0.0152  # [M/H] = log10(Zini / Z_sun) of PARSEC v1.2S (Bressan et al. 2012)
    tio_bands_aa: tuple[float, ...] = (7050.0, 8430.0)   # paper Figs 11, 13: Teff-sensitive TiO bands marked
    gravity_lines_aa: tuple[float, ...] = (7680.0, 8190.0)   # paper Fig. 12: log g-sensitive pairs marked (K I, Na I)
    spectra_per_sequence: int = 5    # spectra drawn per sequence in Figs 11 and 13 (dwarf/giant pairs in Fig. 12)
    figure_dpi: int = 100            # PNG resolution of the report figures


@dataclass(frozen=True)
class NnConfig:
    """Neural-net cleaning of the DBSCAN-kept sample (paper §2.5; pipeline/stages/nn.py)."""

    # paper §2.5: sizes of the hidden layers between the 1657-pixel red-grid input and the 3 outputs
    # (1657 -> 512 -> 64 -> 3; stages/nn.py says how that reads against the paper's "5-layer" wording)
    hidden_layers: tuple[int, ...] = (512, 64)

    k_folds: int = 5                 # every star's held-out prediction comes from the fold model that left it out
    max_iterations: int = 5          # paper §2.5: "iterated training 5 times"; stops early once none is removed

    # paper §2.5: a star whose held-out |prediction - label| exceeds any of these is removed
    max_dteff_k: float = 100.0
    max_dlogg_dex: float = 0.2
    max_dmh_dex: float = 0.2
    # ... and exceeds this many robust sigmas of that iteration's held-out residuals (0 = the paper's
    # fixed limits alone): a net less precise than the limits (the paper's reached 14 K / 0.06 / 0.05)
    # would otherwise remove clean stars by its own scatter, iteration after iteration (330 synthetic
    # stars, fixed limits: 316 of 328 clean stars removed in 3 iterations)
    limit_nsigma: float = 4.0

    # optimiser of each fold model (scikit-learn MLPRegressor, adam); early stopping on a validation
    # share of the fold's training stars replaces the paper's 10,000 fixed fits
    max_epochs: int = 200            # upper bound on passes over the training stars (sklearn max_iter)
    batch_size: int = 200            # minibatch size (stars)
    learning_rate: float = 1e-3      # adam initial step (learning_rate_init)
    tol: float = 1e-4                # improvement of the validation R^2 that counts as progress
    validation_fraction: float = 0.1  # share of a fold's training stars held back for early stopping
    n_iter_no_change: int = 10       # epochs without progress before a fit stops

    # L2 penalty on the weights (sklearn scales it by 1/n_stars, like ridge's alpha): 1,657 correlated
    # pixels into 512 units overfit pixel noise at sklearn's 1e-4; one fold of 5,000 synthetic stars,
    # held-out Teff / log g / [M/H] robust sigma: 1e-4 -> 38 K / 0.20 / 0.076, 1 -> 29 / 0.13 / 0.068,
    # 3 -> 26 / 0.08 / 0.063 (20 epochs' patience), 5 -> 27 / 0.09 / 0.069, 20 -> 31 / 0.15 / 0.076 (label noise alone: 22 / 0.044 / 0.042)
    alpha: float = 3.0

    min_good_pix_frac: float = 0.5   # a spectrum with fewer good red-grid pixels (ivar > 0, finite) never enters
    # BLAS threads while training: pinned so predictions do not depend on the machine's core count
    blas_threads: int = 1
    seed: int = 1                    # seeds the fold deals and every fold network (same seed -> same predictions)


@dataclass(frozen=True)
class LaspmConfig:
    """LASPM template chi^2 fits on the red grid (paper §4, Du et al. 2021; udfs/laspm.py)."""

    # the template libraries fitted by every build, one result set (partition of lsp_results) each:
    # 'golden' and 'model_grid' are derived (lsp_library), any other name an ingested library
    # (mgold ingest library); a result set no longer listed is dropped, saying so
    libraries: tuple[str, ...] = ("golden", "model_grid")
    udf_library: str = "golden"      # the library of the laspm_fit() SQL function (mgold sql query)
    # which golden spectra make the 'golden' library: 'all' of gold_sample, or 'best_per_bin' (the
    # highest-S/N spectrum of each parameter bin: one template per bin, as the paper's 1,365; the fit
    # costs time in proportion to the templates)
    golden_subset: str = "all"

    # science outputs (lsp_precision, lsp_vs_*): paper §4.2 S/N steps of 5 (Fig. 16), the Fig. 17
    # summary over S/N >= 10, and the S/N > 10 of the StarHorse / APOGEE comparisons (§4.3-4.4)
    precision_snr_step: float = 5.0
    precision_snr_min: float = 10.0
    compare_snr_min: float = 10.0

    poly_degree: int = 2             # degree of the multiplicative Legendre polynomial P(x) per template
    # rest-frame AA lo/hi pairs of the red grid left out of the fit; empty = the whole
    # 6000-8800 AA region, as in Du et al. (2021)
    mask_windows_aa: tuple[float, ...] = ()

    k_best: int = 10                 # templates whose labels are interpolated (paper §4.1)
    n_candidates: int = 40           # best templates of the float32 screen refitted in float64 (>= k_best)
    # label weights exp(-D / (2 T)) of the k best: 'chi2' D = dchi2 (the formal likelihood,
    # collapses onto one template at high S/N); 'reduced' D = dchi2 / best chi2_nu; 'signal'
    # D = dchi2 / (S/N)^2 per pixel (T then independent of S/N); 'uniform' equal weights
    weighting: str = "signal"

    # T of the weights; 0.01-0.1 was best on two smooth synthetic libraries at S/N 10-100
    # (udfs tests); tune it on the synthetic universe against truth
    temperature: float = 0.03

    # edge-of-library flag: every k-best template carrying this fraction of the weight lies on
    # the boundary of the library's convex hull in label space
    edge_weight_min: float = 0.1

    poor_fit_chi2_nu: float = 3.0    # poor-fit flag above this reduced chi2 of the best template
    min_good_pix_frac: float = 0.5   # too-few-pixels flag below this fraction of the used red-grid pixels
    # a template is fitted to a spectrum only where they share this fraction of the spectrum's
    # good pixels (a partial library such as MILES covers ~58% of the red grid)
    min_overlap_frac: float = 0.5

    rv_halfwidth_kms: float = 500.0  # RV fit (header RV missing): trial velocities -w..+w
    rv_step_kms: float = 5.0         # RV grid step (the minimum is refined by a parabola)
    rv_n_templates: int = 3          # best templates the RV is fitted against
    # RV-fit-poor flag below this depth of the chi2 curve (median - min, in Delta chi2 at
    # chi2_nu = 1): stars reached >= 150 at S/N 5, pure noise <= 77 (udfs tests)
    rv_min_depth_dchi2: float = 100.0

    batch_spectra: int = 256         # observations per GEMM batch (GEMM outputs ~60 MB for 5,105 templates)


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

    # visits whose 1D-pipeline RV fit failed: Z = Z_ERR = rv = -9999 in headers and catalogue
    # (truth keeps the true RV). 2 of the 293 real LRS files in ../shared/data/real (0.7 %) carry
    # Z = -9999 (the 4 of 54 DR7 files in issue 9 were hand-picked M stars): the real rate, rounded
    rv_failure_rate: float = 0.01

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
    duckdb: DuckdbConfig = DuckdbConfig()
    ingest: IngestConfig = IngestConfig()
    xmatch: XmatchConfig = XmatchConfig()
    select: SelectConfig = SelectConfig()
    labels: LabelsConfig = LabelsConfig()
    spectra: SpectraConfig = SpectraConfig()
    clean: CleanConfig = CleanConfig()
    library: LibraryConfig = LibraryConfig()
    report: ReportConfig = ReportConfig()
    nn: NnConfig = NnConfig()
    laspm: LaspmConfig = LaspmConfig()
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
        bad = problems(cfg)
        if bad:
            raise ValueError(bad[0])
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
        elif isinstance(v, (tuple, list)) and v and isinstance(v[0], dict):
            # a registry (tuple of records): one JSON text, so SQL reads it with json_extract
            out[key] = json.dumps([{f: list(x) if isinstance(x, tuple) else x for f, x in r.items()} for r in v],
                                  sort_keys=True)
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
    if isinstance(current, tuple) and current and dataclasses.is_dataclass(current[0]):
        return dataclasses.replace(obj, **{head: _records(type(current[0]), value, full)})
    return dataclasses.replace(obj, **{head: _coerce(current, value, full)})


def _records(kind: type, value: Any, key: str) -> tuple:
    """A registry value (JSON text or a list of dicts / records) -> a tuple of ``kind`` records."""
    try:
        items = json.loads(value) if isinstance(value, str) else value
        names = {f.name for f in dataclasses.fields(kind)}
        out = []
        for it in items:
            if dataclasses.is_dataclass(it):
                out.append(it)
                continue
            extra = set(it) - names
            if extra:
                raise ValueError(f"unknown field(s) {', '.join(sorted(extra))}")
            out.append(kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in it.items()}))
        return tuple(out)
    except (TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"config key {key!r} expects a list of {kind.__name__} records: {e}") from None


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


# --------------------------------------------------------------------------- validation

# keys that must be >= 1 (counts, sizes) and > 0 (widths, steps, radii); fractions and min <= max
# pairs are found by name (``_rate``, ``_fraction``, ``_frac``, ``coverage``; ``*_min*`` / ``*_max*``)
AT_LEAST_ONE = (
    "ingest.workers", "ingest.spectra_per_row_group", "ingest.spectra_per_file", "ingest.catalog_batch_rows",
    "spectra.batch_spectra", "clean.top_n_per_bin", "clean.cap_per_bin", "clean.minpts_min",
    "clean.minpts_stars_per_point", "select.cmd_min_stars_per_step", "labels.offset_min_stars",
    "synth.n_stars", "synth.max_visits", "synth.spectra_per_file", "spectra.sedcal_iterations")
POSITIVE = (
    "duckdb.memory_limit_gb", "xmatch.radius_arcsec", "xmatch.catalog_radius_arcsec", "xmatch.zone_height_deg", "select.cmd_color_step_mag",
    "select.cmd_clip_nsigma", "select.dwarf_dist_max_kpc", "laspm.precision_snr_step", "select.giant_dist_max_kpc", "labels.offset_clip_nsigma",
    "spectra.dloglam", "clean.bin_teff_k", "clean.bin_logg_dex", "clean.bin_mh_dex", "clean.dbscan_eps",
    "clean.figure_eps_alt", "labels.dwarf_max_dteff_k", "labels.dwarf_max_dlogg_dex", "labels.dwarf_max_dmh_dex",
    "labels.giant_max_dteff_k", "labels.giant_max_dlogg_dex", "labels.giant_max_dmh_dex", "ingest.loglinear_rtol")
NON_NEGATIVE = ("spectra.sedcal_poly_order", "clean.bin_recal_order", "labels.offset_clip_iterations",
                "clean.dist_ref_pix", "clean.dist_weight_floor", "clean.sky_halfwidth_aa",
                "clean.bin_recal_clip_nsigma", "spectra.sedcal_clip_nsigma", "ingest.min_pixels")
FIT_ORDERS = ("select.dwarf_fit_order", "select.giant_fit_order")   # sel_cmd_fit solves up to a cubic
CHOICES = {"laspm.weighting": ("chi2", "reduced", "signal", "uniform"),   # udfs/laspm.py WEIGHTINGS
           "laspm.golden_subset": ("all", "best_per_bin")}
CLASSES = ("dwarf", "giant")


def problems(cfg: "Config") -> list[str]:
    """Every value out of its range, as one line naming the key and why (empty: valid)."""
    flat = cfg.flat()
    out = []

    def bad(key: str, why: str) -> None:
        out.append(f"config key {key!r} {why}, got {flat[key]!r}")

    for k in AT_LEAST_ONE:
        if k in flat and flat[k] < 1:
            bad(k, "must be at least 1")
    for k in POSITIVE:
        if k in flat and not flat[k] > 0:
            bad(k, "must be > 0")
    for k in NON_NEGATIVE:
        if k in flat and flat[k] < 0:
            bad(k, "must be >= 0")
    for k in FIT_ORDERS:
        if k in flat and flat[k] not in (1, 2, 3):
            bad(k, "must be 1, 2 or 3 (sel_cmd_fit fits up to a cubic)")
    for k, allowed in CHOICES.items():
        if k in flat and flat[k] not in allowed:
            bad(k, f"must be one of {', '.join(allowed)}")
    for k, v in flat.items():
        name = k.rsplit(".", 1)[-1]
        if isinstance(v, float | int) and not isinstance(v, bool) and \
                name.endswith(("_rate", "_fraction", "_frac", "coverage", "completeness")) and not 0 <= v <= 1:
            bad(k, "is a fraction and must lie in [0, 1]")
        for lo_tag, hi_tag in (("_min_", "_max_"), ("_min", "_max"), ("min_", "max_")):
            if lo_tag in name and (name.endswith(lo_tag) or lo_tag.startswith("_") or name.startswith(lo_tag)):
                hi = k[: len(k) - len(name)] + name.replace(lo_tag, hi_tag, 1)
                if hi != k and hi in flat and isinstance(v, float | int) and isinstance(flat[hi], float | int) \
                        and v > flat[hi]:
                    out.append(f"config key {k!r} ({v!r}) must not exceed {hi!r} ({flat[hi]!r})")
                break
    keys = [c.key for c in cfg.labels.catalogs]
    if len(set(keys)) != len(keys):
        bad("labels.catalogs", "lists a catalogue twice")
    by_key = {c.key: c for c in cfg.labels.catalogs}
    for c in cfg.labels.catalogs:
        if not set(c.classes) <= set(CLASSES) or c.keyed_by not in ("obsid", "position"):
            bad("labels.catalogs", f"has entry {c.key!r} with classes {list(c.classes)} / keyed_by {c.keyed_by!r} "
                                   f"(classes from {list(CLASSES)}, keyed_by obsid or position)")
    for cls in CLASSES:
        key = f"labels.{cls}_priority"
        for name in getattr(cfg.labels, f"{cls}_priority"):
            if name not in by_key or cls not in by_key[name].classes:
                bad(key, f"names {name!r}, which labels.catalogs does not list as a {cls} catalogue")
    if cfg.labels.supplement_catalog not in by_key:
        bad("labels.supplement_catalog", "must be a key of labels.catalogs")
    return out


DEFAULT = Config()
