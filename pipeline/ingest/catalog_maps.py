"""Declarative column maps: source catalogue columns -> staging names with units.

One entry per ``mgold ingest catalog KIND``. Each column lists the names it may
carry in real files (first match wins, case-insensitive), its DuckDB type, whether
it is required, and which sentinel values mean "missing" (they become NULL, as do
NaN and +-inf). The landing table is ``landing.<kind>``; it holds exactly these
columns plus ``_file`` (source path) and ``_row`` (0-based row in that file).

This table is the contract between the synthetic universe (which writes the real
column names), catalogue ingest, and the SQL models (which read the staging names).
The README's "Catalogue column maps" section is generated from it.
"""

from __future__ import annotations

from dataclasses import dataclass

SENTINELS_ANY = (-9999.0, 9999.0, 99999.0, -99999.0)
SENTINELS_MAG = SENTINELS_ANY + (99.0,)


@dataclass(frozen=True)
class Col:
    name: str                     # staging name, with units
    aliases: tuple[str, ...]      # names in real files
    dtype: str = "DOUBLE"         # DuckDB type
    required: bool = False
    sentinels: tuple[float, ...] = SENTINELS_ANY
    doc: str = ""


@dataclass(frozen=True)
class CatalogKind:
    kind: str
    doc: str
    columns: tuple[Col, ...]
    key: tuple[str, ...] = ()     # unique key (duplicates are reported, the first is kept)
    # a landing table shared by several kinds (their rows tagged with ``catalog`` = kind), so one
    # staging model reads them all: every obsid-keyed label catalogue lands in ``obsid_labels``
    landing: str = ""

    @property
    def table(self) -> str:
        """The landing table (``landing.<table>``) this kind's rows go to."""
        return self.landing or self.kind

    @property
    def shared(self) -> bool:
        return bool(self.landing)


def landing_kinds(table: str) -> list[str]:
    """The catalogue kinds whose rows land in ``landing.<table>``."""
    return sorted(k for k, spec in KINDS.items() if spec.table == table)


# an obsid-keyed label catalogue (paper §2.2): its column map is one entry of this shape
OBSID_LABELS = "obsid_labels"


def obsid_label_kind(kind: str, doc: str) -> "CatalogKind":
    return CatalogKind(kind, doc, (
        _c("obsid", ["obsid", "OBSID"], "BIGINT", True),
        _c("source_id", ["source_id", "gaia_source_id"], "BIGINT"),
        *_POS, *_LABEL_COLS,
    ), key=("obsid",), landing=OBSID_LABELS)


def _c(name, aliases, dtype="DOUBLE", required=False, sentinels=SENTINELS_ANY, doc=""):
    return Col(name, tuple(aliases), dtype, required, sentinels, doc)


_LABEL_COLS = (
    _c("teff_k", ["teff", "TEFF", "Teff", "teff50"], required=True),
    _c("teff_err_k", ["teff_err", "TEFF_ERR", "e_Teff", "teff_error"]),
    _c("logg_dex", ["logg", "LOGG", "logg50"], required=True),
    _c("logg_err_dex", ["logg_err", "LOGG_ERR", "e_logg", "logg_error"]),
    _c("mh_dex", ["m_h", "M_H", "mh", "[M/H]", "feh", "FE_H", "met50"], required=True),
    _c("mh_err_dex", ["m_h_err", "M_H_ERR", "mh_err", "e_[M/H]", "feh_err", "FE_H_ERR"]),
)

_POS = (
    _c("ra_deg", ["ra", "RA", "ra_deg", "RAJ2000", "ra_gaia", "ra_lamost"]),
    _c("dec_deg", ["dec", "DEC", "dec_deg", "DEJ2000", "dec_gaia", "dec_lamost"]),
)

KINDS: dict[str, CatalogKind] = {k.kind: k for k in [
    CatalogKind("gaia", "Gaia EDR3 gaia_source rows", (
        _c("source_id", ["source_id", "SOURCE_ID", "GAIA_ID", "gaia_source_id"], "BIGINT", True),
        _c("ra_deg", ["ra", "RA", "ra_gaia"], required=True),
        _c("dec_deg", ["dec", "DEC", "dec_gaia"], required=True),
        _c("ref_epoch_yr", ["ref_epoch", "REF_EPOCH"], doc="NULL -> 2016.0 in staging"),
        _c("parallax_mas", ["parallax", "PLX"]),
        _c("parallax_error_mas", ["parallax_error", "PLX_ERR"]),
        _c("pmra_masyr", ["pmra", "PMRA"]),
        _c("pmdec_masyr", ["pmdec", "PMDEC"]),
        _c("g_mag", ["phot_g_mean_mag", "G_MAG", "gmag"], sentinels=SENTINELS_MAG),
        _c("bp_mag", ["phot_bp_mean_mag", "BP_MAG", "bpmag"], sentinels=SENTINELS_MAG),
        _c("rp_mag", ["phot_rp_mean_mag", "RP_MAG", "rpmag"], sentinels=SENTINELS_MAG),
        _c("ruwe", ["ruwe", "RUWE"]),
        _c("bp_rp_excess_factor", ["phot_bp_rp_excess_factor"]),
    ), key=("source_id",)),
    CatalogKind("bailer_jones", "Bailer-Jones et al. (2021) EDR3 distances", (
        _c("source_id", ["source_id", "Source"], "BIGINT", True),
        _c("r_med_photogeo_pc", ["r_med_photogeo", "rpgeo"], required=True),
        _c("r_lo_photogeo_pc", ["r_lo_photogeo", "b_rpgeo"]),
        _c("r_hi_photogeo_pc", ["r_hi_photogeo", "B_rpgeo"]),
        _c("r_med_geo_pc", ["r_med_geo", "rgeo"]),
    ), key=("source_id",)),
    CatalogKind("dust", "per-star extinction from a 3D dust map (Green et al. 2018-like)", (
        _c("source_id", ["source_id"], "BIGINT", True),
        _c("av_mag", ["av", "A_V", "Av", "av_mag"]),
        _c("ebv_mag", ["ebv", "EBV", "E(B-V)", "ebv_mag"]),
    ), key=("source_id",)),
    CatalogKind("starhorse", "StarHorse EDR3 (Anders et al. 2022) medians and percentiles", (
        _c("source_id", ["source_id", "EDR3_source_id", "dr3_source_id"], "BIGINT", True),
        _c("teff_k", ["teff50"], required=True),
        _c("teff16_k", ["teff16"]), _c("teff84_k", ["teff84"]),
        _c("logg_dex", ["logg50"], required=True),
        _c("logg16_dex", ["logg16"]), _c("logg84_dex", ["logg84"]),
        _c("mh_dex", ["met50"], required=True),
        _c("mh16_dex", ["met16"]), _c("mh84_dex", ["met84"]),
        _c("dist_kpc", ["dist50"]),
        _c("av_mag", ["av50"]),
    ), key=("source_id",)),
    CatalogKind("aspcap", "APOGEE DR17 allStar (ASPCAP)", (
        _c("apogee_id", ["APOGEE_ID", "APOGEE_ID_1"], "VARCHAR", True),
        _c("source_id", ["GAIAEDR3_SOURCE_ID", "source_id"], "BIGINT"),
        _c("ra_deg", ["RA", "RA_1", "ra"]),
        _c("dec_deg", ["DEC", "DEC_1", "dec"]),
        _c("teff_k", ["TEFF", "TEFF_2"], required=True),
        _c("teff_err_k", ["TEFF_ERR"]),
        _c("logg_dex", ["LOGG"], required=True),
        _c("logg_err_dex", ["LOGG_ERR"]),
        _c("mh_dex", ["M_H"], required=True),
        _c("mh_err_dex", ["M_H_ERR"]),
        _c("snr", ["SNR"]),
        _c("starflag", ["STARFLAG"], "BIGINT", sentinels=()),
        _c("aspcapflag", ["ASPCAPFLAG"], "BIGINT", sentinels=()),
    ), key=("apogee_id",)),
    obsid_label_kind("qiu23", "M giants of Qiu et al. (2023), SLAM on LAMOST with APOGEE labels"),
    obsid_label_kind("ding22", "M dwarfs of Ding et al. (2022), ULySS + MILES on LAMOST DR8"),
    obsid_label_kind("laspm", "the previous LASPM M-type parameters (LAMOST DR9+ catalogue)"),
    CatalogKind("variables", "variable stars collected from Kepler, ZTF, K2, WISE, Gaia, TESS, LAMOST", (
        _c("source_id", ["source_id", "gaia_source_id"], "BIGINT"),
        *_POS,
        _c("var_type", ["type", "var_type", "vartype"], "VARCHAR"),
        _c("survey", ["survey", "source", "catalog"], "VARCHAR"),
    )),
    CatalogKind("lamost_catalog", "LAMOST LRS M-type catalogue rows (one per obsid)", (
        _c("obsid", ["obsid", "OBSID", "combined_obsid"], "BIGINT", True),
        _c("designation", ["designation", "DESIG"], "VARCHAR"),
        _c("gaia_source_id", ["gaia_source_id", "source_id"], "BIGINT"),
        _c("ra_deg", ["ra", "RA", "ra_lamost", "ra_obs"]),
        _c("dec_deg", ["dec", "DEC", "dec_lamost", "dec_obs"]),
        _c("class", ["class", "CLASS", "combined_class"], "VARCHAR"),
        _c("subclass", ["subclass", "SUBCLASS", "combined_subclass"], "VARCHAR"),
        _c("snr_u", ["snru", "snr_u"]), _c("snr_g", ["snrg", "snr_g"]),
        _c("snr_r", ["snrr", "snr_r"]), _c("snr_i", ["snri", "snr_i"]),
        _c("snr_z", ["snrz", "snr_z"]),
        _c("rv_kms", ["rv", "RV", "z_rv"]),
        _c("rv_err_kms", ["rv_err", "RV_ERR"]),
        _c("lmjd", ["lmjd", "LMJD", "combined_lmjd"], "INTEGER"),
        _c("planid", ["planid", "PLANID", "combined_planid"], "VARCHAR"),
        _c("spid", ["spid", "SPID", "combined_spid"], "INTEGER"),
        _c("fiberid", ["fiberid", "FIBERID", "combined_fiberid"], "INTEGER"),
    ), key=("obsid",)),
    CatalogKind("model_sed_grid", "reference model SEDs for recalibration (BT-Settl-like, MARCS-like)", (
        _c("family", ["family"], "VARCHAR", True),
        _c("teff_k", ["teff", "teff_k"], required=True),
        _c("logg_dex", ["logg", "logg_dex"], required=True),
        _c("mh_dex", ["mh", "m_h", "mh_dex"], required=True),
        _c("loglam0", ["loglam0"], required=True),
        _c("dloglam", ["dloglam"], required=True),
        _c("flux", ["flux"], "FLOAT[]", True, sentinels=()),
    ), key=("family", "teff_k", "logg_dex", "mh_dex")),
    CatalogKind("isochrones", "PARSEC v1.2S isochrones with Gaia G/BP/RP", (
        _c("zini", ["Zini"], required=True),
        _c("age_yr", ["Age", "age"], required=True),
        _c("mini_msun", ["Mini"]),
        _c("mass_msun", ["Mass"]),
        _c("logl_lsun", ["logL"]),
        _c("logte_k", ["logTe"], doc="log10 Teff/K"),
        _c("logg_dex", ["logg"]),
        _c("label", ["label"], "INTEGER", sentinels=()),
        _c("abs_g_mag", ["Gmag"], sentinels=()),
        _c("abs_bp_mag", ["G_BPmag"], sentinels=()),
        _c("abs_rp_mag", ["G_RPmag"], sentinels=()),
        _c("source_name", ["source_name"], "VARCHAR",
           doc="'folder/file' name when the file lacks it: tells [M/H]/age files apart"),
    )),
]}
