"""External catalogues of the synthetic universe, with their real column names.

Each ``*_table`` returns ``{column: numpy array}`` whose names map through
``pipeline/ingest/catalog_maps.py``. Label catalogues (ASPCAP, Qiu23, Ding22, LASPM)
carry the injected systematic offsets of ``SynthConfig`` per class, noise and
catastrophic outliers; StarHorse is unbiased but noisy with a quantised [M/H].
``label_truth`` records which star every label row really describes.
"""

from __future__ import annotations

import numpy as np

from mgold.pipeline.config import SynthCatalog, SynthConfig
from mgold.pipeline.synth.spectra_model import DLOGLAM, FAMILIES, LOGLAM0, lamost_wave_aa, model_sed
from mgold.pipeline.synth.stars import GAIA_EPOCH_YR, VAR_SURVEYS, stream

PARAMS = ("teff_k", "logg_dex", "mh_dex")
OUTLIER_SHIFT = {"teff_k": (300.0, 800.0), "logg_dex": (0.5, 1.5), "mh_dex": (0.3, 0.8)}
# (family, class it is meant for, logg grid) of the reference SED grid (paper §2.3.2)
SED_GRIDS = {"bt_settl_like": np.arange(4.0, 5.51, 0.5), "marcs_like": np.arange(-0.5, 3.51, 0.5)}
SED_TEFF_K = np.arange(2800.0, 4401.0, 100.0)
SED_MH_DEX = np.arange(-1.0, 0.51, 0.5)
ASPCAP_STAR_BAD = 1 << 23
# the real column names each obsid-keyed label catalogue writes (which classes it labels is the
# registry's, ``labels.catalogs``); a catalogue not listed here writes the first style
LABEL_COLUMNS = {
    "qiu23": ({"teff_k": "teff", "logg_dex": "logg", "mh_dex": "m_h"}, "_err"),
    "ding22": ({"teff_k": "Teff", "logg_dex": "logg", "mh_dex": "[M/H]"}, "e_"),
    "laspm": ({"teff_k": "teff", "logg_dex": "logg", "mh_dex": "feh"}, "_err"),
}


def catalog_cfg(cfg: SynthConfig, name: str) -> SynthCatalog:
    return getattr(cfg, name)


def synthesised(cfg: SynthConfig, catalogs) -> list:
    """The registry's catalogues (``labels.catalogs``) this universe can write: those with a
    ``synth.<key>`` section of injected offsets, noise and coverage."""
    return [c for c in catalogs if isinstance(getattr(cfg, c.key, None), SynthCatalog)]


def _labels_with_errors(cat: SynthCatalog, labels: dict, cls: np.ndarray, rng,
                        err_factor: np.ndarray | None = None):
    """(values, errors, is_outlier) = truth + class offset + noise, with catastrophic outliers."""
    n = cls.size
    f = np.exp(rng.normal(0, 0.3, n)) if err_factor is None else err_factor
    outlier = rng.random(n) < cat.outlier_rate
    vals, errs = {}, {}
    for p in PARAMS:
        offset = np.where(cls == "giant", getattr(cat.giant, p), getattr(cat.dwarf, p))
        err = getattr(cat.noise, p) * f
        lo, hi = OUTLIER_SHIFT[p]
        jump = rng.choice([-1.0, 1.0], n) * rng.uniform(lo, hi, n)
        vals[p] = labels[p] + offset + rng.normal(0, 1, n) * err + np.where(outlier, jump, 0.0)
        errs[p] = err
    return vals, errs, outlier


def _missing(values: np.ndarray, missing: np.ndarray) -> np.ma.MaskedArray:
    """Values with some entries missing (written as empty CSV cells / FITS nulls)."""
    return np.ma.MaskedArray(values, mask=missing)


def _covered(rng, eligible: np.ndarray, coverage: float, weight: np.ndarray | None = None) -> np.ndarray:
    if weight is None:
        p = np.full(eligible.size, coverage)
    else:   # preferential coverage keeping the mean at ``coverage``
        p = np.clip(coverage * weight / weight[eligible].mean(), 0, 1)
    return eligible & (rng.random(eligible.size) < p)


def gaia_table(stars: dict) -> dict:
    return {"source_id": stars["source_id"], "ra": stars["ra_deg"], "dec": stars["dec_deg"],
            "ref_epoch": np.full(stars["star_id"].size, GAIA_EPOCH_YR),
            "parallax": stars["parallax_mas"], "parallax_error": stars["parallax_error_mas"],
            "pmra": stars["pmra_masyr"], "pmdec": stars["pmdec_masyr"],
            "phot_g_mean_mag": stars["g_mag"], "phot_bp_mean_mag": stars["bp_mag"],
            "phot_rp_mean_mag": stars["rp_mag"], "ruwe": stars["ruwe"],
            "phot_bp_rp_excess_factor": stars["bp_rp_excess_factor"]}


def bailer_jones_table(cfg: SynthConfig, stars: dict) -> dict:
    rng = stream(cfg, "bailer_jones")
    n = stars["star_id"].size
    frac = np.clip(stars["parallax_error_mas"] * stars["dist_pc"] / 1000.0, 0.005, 0.3)
    r_med = stars["dist_pc"] * (1.0 + rng.normal(0, 1, n) * frac)
    return {"source_id": stars["source_id"], "r_med_geo": r_med * (1 + rng.normal(0, 0.5, n) * frac),
            "r_lo_photogeo": r_med * (1 - frac), "r_med_photogeo": r_med, "r_hi_photogeo": r_med * (1 + frac)}


def dust_table(cfg: SynthConfig, stars: dict) -> dict:
    rng = stream(cfg, "dust")
    n = stars["star_id"].size
    av = np.maximum(stars["av_mag"] * (1 + rng.normal(0, 0.1, n)) + rng.normal(0, 0.02, n), 0.0)
    return {"source_id": stars["source_id"], "av": av, "ebv": av / 3.1}


def starhorse_table(cfg: SynthConfig, stars: dict) -> dict:
    """Unbiased, noisy (~140 K at G = 14, worse fainter), [M/H] quantised to the model grid."""
    rng = stream(cfg, "starhorse")
    n = stars["star_id"].size
    keep = rng.random(n) < cfg.starhorse_coverage
    # noise grows 10% per magnitude fainter than G = 14 and does not shrink for brighter stars
    scale = (1.0 + 0.1 * np.maximum(stars["g_mag"] - 14.0, 0.0))[keep]
    m = keep.sum()
    out = {"source_id": stars["source_id"][keep]}
    sig = {"teff": cfg.starhorse_teff_noise_k_at_g14 * scale, "logg": cfg.starhorse_logg_noise_dex * scale,
           "met": cfg.starhorse_mh_noise_dex * scale}
    truth = {"teff": stars["teff_k"][keep], "logg": stars["logg_dex"][keep], "met": stars["mh_dex"][keep]}
    for p in ("teff", "logg", "met"):
        v50 = truth[p] + rng.normal(0, 1, m) * sig[p]
        if p == "met":
            v50 = np.round(v50 / cfg.starhorse_mh_grid_step_dex) * cfg.starhorse_mh_grid_step_dex
        out[f"{p}16"] = v50 - sig[p] * np.exp(rng.normal(0, 0.1, m))
        out[f"{p}50"] = v50
        out[f"{p}84"] = v50 + sig[p] * np.exp(rng.normal(0, 0.1, m))
    out["dist50"] = stars["dist_pc"][keep] / 1000.0 * (1 + rng.normal(0, 0.05, m))
    out["av50"] = np.maximum(stars["av_mag"][keep] + rng.normal(0, 0.05, m), 0.0)
    return out


def apogee_ids(ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    """2MASS-style APOGEE ids '2Mhhmmssss+ddmmsss'."""
    out = []
    for ra, dec in zip(ra_deg, dec_deg):
        h = ra / 15.0
        sign = "+" if dec >= 0 else "-"
        d = abs(dec)
        out.append(f"2M{int(h):02d}{int(h * 60 % 60):02d}{int(h * 3600 % 60 * 100):04d}"
                   f"{sign}{int(d):02d}{int(d * 60 % 60):02d}{int(d * 3600 % 60 * 10):03d}")
    return np.array(out)


def aspcap_table(cfg: SynthConfig, stars: dict) -> tuple[dict, dict]:
    """allStar rows for brighter-weighted stars, -9999 sentinels and STAR_BAD rows."""
    rng = stream(cfg, "aspcap")
    cat = cfg.aspcap
    eligible = ~stars["dr11_only"]
    sel = np.flatnonzero(_covered(rng, eligible, cat.coverage, 10 ** (-0.2 * (stars["g_mag"] - 15.0))))
    m = sel.size
    labels = {p: stars[p][sel] for p in PARAMS}
    f = np.exp(rng.normal(0, cfg.aspcap_err_lognormal_sigma, m))
    vals, errs, outlier = _labels_with_errors(cat, labels, stars["class"][sel], rng, f)
    bad = rng.random(m) < cfg.aspcap_flagged_rate
    sentinel = rng.random(m) < cfg.aspcap_sentinel_rate
    out = {"APOGEE_ID": apogee_ids(stars["ra_deg"][sel], stars["dec_deg"][sel]),
           "GAIAEDR3_SOURCE_ID": stars["source_id"][sel],
           "RA": stars["ra_deg"][sel], "DEC": stars["dec_deg"][sel]}
    for p, col in (("teff_k", "TEFF"), ("logg_dex", "LOGG"), ("mh_dex", "M_H")):
        # STAR_BAD rows are also badly off: the flag is the only way to know
        v = np.where(bad, vals[p] + 4 * errs[p] * rng.normal(0, 1, m) + np.sign(rng.normal(0, 1, m))
                     * OUTLIER_SHIFT[p][0], vals[p])
        out[col] = np.where(sentinel, -9999.0, v).astype(np.float32)
        out[col + "_ERR"] = np.where(sentinel, -9999.0, errs[p]).astype(np.float32)
    out["SNR"] = (60 + 300 * rng.beta(1.5, 3, m)).astype(np.float32)
    out["STARFLAG"] = np.where(rng.random(m) < 0.05, 8, 0).astype(np.int64)
    out["ASPCAPFLAG"] = np.where(bad, ASPCAP_STAR_BAD, 0).astype(np.int64)
    truth = {"catalog": "aspcap", "row_key": out["APOGEE_ID"], "star_id": stars["star_id"][sel],
             "is_outlier": outlier | bad | sentinel}
    return out, truth


def obsid_label_table(cfg: SynthConfig, name: str, classes: tuple[str, ...], stars: dict,
                      visits: dict) -> tuple[dict, dict]:
    """Rows of an obsid-keyed catalogue (Qiu23 / Ding22 / LASPM) labelling ``classes``, one per obsid of
    the covered stars (all their visits)."""
    names, err_style = LABEL_COLUMNS.get(name, next(iter(LABEL_COLUMNS.values())))
    rng = stream(cfg, name)
    cat = catalog_cfg(cfg, name)
    eligible = np.isin(stars["class"], classes) & ~stars["dr11_only"]
    star_in = _covered(rng, eligible, cat.coverage)
    rows = np.flatnonzero(star_in[visits["star_id"]])
    lab = visits["labels_of_star_id"][rows]   # swapped-label defects show up here
    labels = {p: stars[p][lab] for p in PARAMS}
    vals, errs, outlier = _labels_with_errors(cat, labels, stars["class"][lab], rng)
    with_gaia = rng.random(rows.size) < 0.8
    out = {"obsid": visits["obsid"][rows],
           "gaia_source_id": _missing(stars["source_id"][visits["star_id"][rows]], ~with_gaia),
           "ra": visits["ra_deg"][rows], "dec": visits["dec_deg"][rows]}
    for p in PARAMS:
        col = names[p]
        out[col] = np.round(vals[p], 1 if p == "teff_k" else 3)
        out[f"e_{col}" if err_style == "e_" else f"{col}_err"] = np.round(errs[p], 1 if p == "teff_k" else 3)
    truth = {"catalog": name, "row_key": visits["obsid"][rows].astype(str),
             "star_id": visits["star_id"][rows], "is_outlier": outlier | (lab != visits["star_id"][rows])}
    return out, truth


def variables_table(cfg: SynthConfig, stars: dict) -> dict:
    rng = stream(cfg, "variables")
    idx = np.flatnonzero(stars["is_variable"] & (rng.random(stars["star_id"].size) < cfg.variable_list_completeness))
    dup = idx[rng.random(idx.size) < 0.15]      # the same star listed by a second survey
    idx = np.sort(np.concatenate([idx, dup]))
    n = idx.size
    with_id = rng.random(n) < 0.7
    jitter = 0.2 / 3600.0
    return {"source_id": _missing(stars["source_id"][idx], ~with_id),
            "ra": stars["ra_deg"][idx] + rng.normal(0, jitter, n) / np.cos(np.radians(stars["dec_deg"][idx])),
            "dec": stars["dec_deg"][idx] + rng.normal(0, jitter, n),
            "type": stars["var_type"][idx],
            "survey": np.array(VAR_SURVEYS)[rng.integers(0, len(VAR_SURVEYS), n)]}


def lamost_catalog_table(cfg: SynthConfig, stars: dict, visits: dict) -> dict:
    """The LAMOST LRS M-type catalogue: one row per obsid; gaia_source_id for part of the rows."""
    rng = stream(cfg, "lamost_catalog")
    n = visits["obsid"].size
    with_gaia = rng.random(n) < cfg.gaia_id_fraction
    snr = visits["header_snr"]
    return {"obsid": visits["obsid"], "designation": visits["designation"],
            "gaia_source_id": _missing(stars["source_id"][visits["star_id"]], ~with_gaia),
            "ra": visits["ra_deg"], "dec": visits["dec_deg"], "class": np.full(n, "STAR"),
            "subclass": visits["subclass"],
            **{f"snr{b}": snr[b] for b in ("u", "g", "r", "i", "z")},
            "rv": np.round(visits["rv_kms"], 2), "rv_err": np.round(visits["rv_err_kms"], 2),
            "lmjd": visits["lmjd"], "planid": visits["planid"], "spid": visits["spid"],
            "fiberid": visits["fiberid"]}


def model_sed_grid_table() -> dict:
    """Both reference families over their label grids on the LAMOST grid (documented mismatch in
    ``spectra_model.sed_mismatch``)."""
    rows = {"family": [], "teff": [], "logg": [], "mh": []}
    for fam in FAMILIES:
        t, g, m = np.meshgrid(SED_TEFF_K, SED_GRIDS[fam], SED_MH_DEX, indexing="ij")
        rows["family"] += [fam] * t.size
        for k, a in (("teff", t), ("logg", g), ("mh", m)):
            rows[k].append(np.round(a.ravel(), 3))
    out = {"family": np.array(rows["family"])}
    out.update({k: np.concatenate(rows[k]) for k in ("teff", "logg", "mh")})
    wave = lamost_wave_aa()
    flux = np.concatenate([model_sed(fam, out["teff"][out["family"] == fam], out["logg"][out["family"] == fam],
                                     out["mh"][out["family"] == fam], wave) for fam in FAMILIES])
    out["loglam0"] = np.full(flux.shape[0], LOGLAM0)
    out["dloglam"] = np.full(flux.shape[0], DLOGLAM)
    out["flux"] = flux.astype(np.float32)
    return out


def injected_offsets(cfg: SynthConfig, catalogs) -> dict:
    """The systematic offsets (catalogue - truth) the universe injected into each of ``catalogs``
    (registry entries) for each class it labels, for evaluation only."""
    rows = []
    for c in synthesised(cfg, catalogs):
        name, cat = c.key, catalog_cfg(cfg, c.key)
        for cls in c.classes:
            for p in PARAMS:
                rows.append((name, cls, p, float(getattr(getattr(cat, cls), p))))
    return {"catalog": np.array([r[0] for r in rows]), "class": np.array([r[1] for r in rows]),
            "param": np.array([r[2] for r in rows]), "offset_value": np.array([r[3] for r in rows])}

