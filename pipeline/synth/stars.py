"""The stars of the synthetic universe: true labels, positions, motions, photometry.

Every star is a column-oriented record (a dict of equal-length numpy arrays). Giants
and dwarfs follow the PARSEC-derived relations of ``isochrones.py``; distances,
a slab 3D dust model, proper motions, Gaia G/BP/RP with errors, parallaxes,
ruwe and BP/RP excess, unresolved binaries and variables are drawn from ``SynthConfig``.
"""

from __future__ import annotations

import zlib

import numpy as np

from mgold.pipeline.config import SynthConfig
from mgold.pipeline.synth.isochrones import relation, relation_rms

DEC_RANGE_DEG = (-10.0, 60.0)     # LAMOST footprint
NGP_RA_DEG, NGP_DEC_DEG = 192.85948, 27.12825
GAIA_EPOCH_YR = 2016.0
PLX_ZERO_POINT_MAS = -0.017       # EDR3 global parallax zero point (Lindegren et al. 2021)
KMS_PER_MASYR_KPC = 4.74047
SOURCE_ID_STRIDE = 2 ** 22        # pseudo-HEALPix cell * stride + star_id, like Gaia ids
DWARF_VAR_TYPES = ("BY", "FLARE", "ROT")
GIANT_VAR_TYPES = ("SR", "LPV", "MIRA")
VAR_SURVEYS = ("Kepler", "ZTF", "K2", "WISE", "Gaia", "TESS", "LAMOST")


def stream(cfg: SynthConfig, name: str, *index: int) -> np.random.Generator:
    """An independent, reproducible random stream for one component (and batch) of the universe."""
    return np.random.default_rng([cfg.seed, zlib.crc32(name.encode()), *index])


def n_extra_stars(cfg: SynthConfig) -> int:
    """Unlabelled stars added for the dr11 preset so the spectra total ~n_dr11_spectra more."""
    mean_visits = 1.0 + cfg.repeat_fraction * (_mean_repeat_visits(cfg) - 1.0)
    return int(round(cfg.n_dr11_spectra / mean_visits))


def _mean_repeat_visits(cfg: SynthConfig) -> float:
    k = np.arange(2, max(cfg.max_visits, 2) + 1)
    p = 0.45 * 0.55 ** (k - 2)
    return float((k * p).sum() / p.sum())


def galactic_sin_b(ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    d, dn = np.radians(dec_deg), np.radians(NGP_DEC_DEG)
    return np.sin(d) * np.sin(dn) + np.cos(d) * np.cos(dn) * np.cos(np.radians(ra_deg - NGP_RA_DEG))


def dust_av(cfg: SynthConfig, dist_pc: np.ndarray, sin_b: np.ndarray, rng) -> np.ndarray:
    """A_V of an exponential dust slab integrated to ``dist_pc``, with 30% clumpiness."""
    sb = np.maximum(np.abs(sin_b), 0.02)
    h = cfg.dust_scale_height_pc
    path_kpc = h / sb * (1.0 - np.exp(-dist_pc * sb / h)) / 1000.0
    return cfg.dust_av_per_kpc * path_kpc * np.exp(rng.normal(0.0, 0.3, dist_pc.size))


def bp_rp_excess_expected(bp_rp_mag: np.ndarray) -> np.ndarray:
    """Riello et al. (2021) Table 2: BP/RP flux excess of a well-behaved source of this colour."""
    x = np.asarray(bp_rp_mag, dtype=float)
    return np.select([x < 0.5, x < 4.0],
                     [1.154360 + 0.033772 * x + 0.032277 * x ** 2,
                      1.162004 + 0.011464 * x + 0.049255 * x ** 2 - 0.005879 * x ** 3],
                     1.057572 + 0.140537 * x)


def bp_rp_excess_sigma(g_mag: np.ndarray) -> np.ndarray:
    """Riello et al. (2021) 1-sigma scatter of C* versus G."""
    return 0.0059898 + 8.817481e-12 * g_mag ** 7.618399


def make_stars(cfg: SynthConfig) -> dict[str, np.ndarray]:
    """All stars: ``cfg.n_stars`` labelled-universe stars then the dr11-only extras."""
    n_main, n_extra = cfg.n_stars, n_extra_stars(cfg)
    n = n_main + n_extra
    if n >= SOURCE_ID_STRIDE:
        raise ValueError(f"synth.n_stars + dr11 extras = {n} exceeds {SOURCE_ID_STRIDE} stars")
    rng = stream(cfg, "stars")
    s: dict[str, np.ndarray] = {"star_id": np.arange(n, dtype=np.int64)}
    giant = rng.random(n) < cfg.giant_fraction
    s["class"] = np.where(giant, "giant", "dwarf")
    s["dr11_only"] = np.arange(n) >= n_main

    # labels: early M dominate; metal-poor stars rare
    s["teff_k"] = np.where(giant, 3150.0 + 1000.0 * rng.beta(2.2, 1.3, n),
                           3000.0 + 1150.0 * rng.beta(2.2, 1.4, n))
    poor = rng.random(n) < cfg.metal_poor_fraction
    s["mh_dex"] = np.where(poor, rng.uniform(-1.0, -0.5, n),
                           np.clip(rng.normal(-0.08, 0.22, n), -0.5, 0.7))
    logg_d = np.clip(relation("logg", "dwarf", s["teff_k"], s["mh_dex"]) + rng.normal(0, 0.06, n), 4.5, 5.2)
    logg_g = np.clip(relation("logg", "giant", s["teff_k"], s["mh_dex"]) + rng.normal(0, 0.2, n), -0.3, 3.0)
    s["logg_dex"] = np.where(giant, logg_g, logg_d)

    # sky, distance, dust
    s["ra_deg"] = rng.uniform(0.0, 360.0, n)
    lo, hi = np.sin(np.radians(DEC_RANGE_DEG))
    s["dec_deg"] = np.degrees(np.arcsin(rng.uniform(lo, hi, n)))
    sin_b = galactic_sin_b(s["ra_deg"], s["dec_deg"])
    cls = np.where(giant, "giant", "dwarf")
    abs_g = np.empty(n)
    bp_rp0 = np.empty(n)
    for c in ("dwarf", "giant"):
        m = cls == c
        abs_g[m] = relation("abs_g", c, s["teff_k"][m], s["mh_dex"][m]) \
            + rng.normal(0, 0.5 * relation_rms("abs_g", c), m.sum())
        bp_rp0[m] = relation("bp_rp", c, s["teff_k"][m], s["mh_dex"][m]) \
            + rng.normal(0, 0.5 * relation_rms("bp_rp", c), m.sum())
    s["is_binary"] = rng.random(n) < cfg.binary_fraction
    abs_g -= np.where(s["is_binary"], rng.uniform(0.0, cfg.binary_max_excess_mag, n), 0.0)
    scale = np.where(giant, cfg.giant_dist_scale_pc, cfg.dwarf_dist_scale_pc)
    dist = 10.0 + rng.gamma(3.0, scale)
    # redraw distances until the star is within the LAMOST magnitude range (dust ignored: cheap)
    for _ in range(30):
        g_guess = abs_g + 5 * np.log10(dist / 10.0)
        bad = (g_guess < cfg.g_mag_min) | (g_guess > cfg.g_mag_max)
        if not bad.any():
            break
        dist[bad] = 10.0 + rng.gamma(3.0, scale[bad])
    g_target = np.clip(abs_g + 5 * np.log10(dist / 10.0), cfg.g_mag_min, cfg.g_mag_max)
    dist = 10.0 * 10 ** ((g_target - abs_g) / 5.0)
    s["dist_pc"] = dist
    s["av_mag"] = dust_av(cfg, dist, sin_b, rng)

    # photometry: G - RP from BP - RP for M stars, then each band with its own extinction
    rp_abs = abs_g - (0.12 + 0.38 * bp_rp0)
    dm = 5 * np.log10(dist / 10.0)
    s["abs_g_mag"] = abs_g
    s["bp_rp0_mag"] = bp_rp0
    g_true = abs_g + dm + cfg.ext_g_per_av * s["av_mag"]
    rp_true = rp_abs + dm + cfg.ext_rp_per_av * s["av_mag"]
    bp_true = rp_abs + bp_rp0 + dm + cfg.ext_bp_per_av * s["av_mag"]
    s["g_mag_true"] = g_true
    s["g_mag"] = g_true + rng.normal(0, 0.0005 + 0.002 * 10 ** (0.4 * (g_true - 17.0)))
    s["bp_mag"] = bp_true + rng.normal(0, 0.003 + 0.02 * 10 ** (0.4 * (bp_true - 19.0)))
    s["rp_mag"] = rp_true + rng.normal(0, 0.002 + 0.005 * 10 ** (0.4 * (rp_true - 17.0)))
    bp_rp = s["bp_mag"] - s["rp_mag"]
    blend = rng.random(n) < 0.02
    s["bp_rp_excess_factor"] = (bp_rp_excess_expected(bp_rp)
                                + rng.normal(0, 1, n) * bp_rp_excess_sigma(s["g_mag"])
                                + np.where(blend, rng.uniform(0.1, 0.4, n), 0.0))
    ruwe = np.exp(rng.normal(0.0, 0.08, n))
    wobbly = s["is_binary"] & (rng.random(n) < 0.6)
    s["ruwe"] = np.where(wobbly, 1.4 + rng.exponential(0.8, n), ruwe)

    # astrometry at the Gaia epoch
    s["parallax_error_mas"] = 0.015 + 0.02 * 10 ** (0.2 * (g_true - 15.0))
    s["parallax_mas"] = 1000.0 / dist + PLX_ZERO_POINT_MAS + rng.normal(0, 1, n) * s["parallax_error_mas"]
    # thin disk plus a 10% thick-disk/halo tail of fast movers
    fast = rng.random(n) < 0.1
    vt = rng.normal(0.0, 1.0, (2, n)) * np.where(fast, 3.0, 1.0) * cfg.tangential_velocity_sigma_kms
    s["pmra_masyr"] = vt[0] / (KMS_PER_MASYR_KPC * dist / 1000.0)
    s["pmdec_masyr"] = vt[1] / (KMS_PER_MASYR_KPC * dist / 1000.0)
    cell = (s["ra_deg"] * 100).astype(np.int64) * 20000 + ((s["dec_deg"] + 90.0) * 100).astype(np.int64)
    s["source_id"] = (cell + 1) * SOURCE_ID_STRIDE + s["star_id"]
    s["rv_true_kms"] = rng.normal(0.0, cfg.rv_sigma_kms, n)

    # variables
    s["is_variable"] = rng.random(n) < cfg.variable_fraction
    vt_idx = rng.integers(0, 3, n)
    s["var_type"] = np.where(giant, np.array(GIANT_VAR_TYPES)[vt_idx], np.array(DWARF_VAR_TYPES)[vt_idx])
    s["var_type"] = np.where(s["is_variable"], s["var_type"], "")

    # visits: most stars once, a fraction 2..max_visits times (geometric, few visits common)
    rep = rng.random(n) < cfg.repeat_fraction
    extra = np.minimum(1 + rng.geometric(0.45, n), max(cfg.max_visits, 1))
    s["n_visits"] = np.where(rep & (cfg.max_visits >= 2), extra, 1).astype(np.int64)
    return s


def position_at(stars: dict[str, np.ndarray], idx: np.ndarray, epoch_yr: np.ndarray):
    """(ra, dec) in degrees of stars ``idx`` propagated linearly from the Gaia epoch to ``epoch_yr``."""
    dt = epoch_yr - GAIA_EPOCH_YR
    dec = stars["dec_deg"][idx] + stars["pmdec_masyr"][idx] * dt / 3.6e6
    cosd = np.cos(np.radians(stars["dec_deg"][idx]))
    ra = (stars["ra_deg"][idx] + stars["pmra_masyr"][idx] * dt / 3.6e6 / cosd) % 360.0
    return ra, dec
