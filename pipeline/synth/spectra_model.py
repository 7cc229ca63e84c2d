"""Intrinsic M/K-star spectra on the LAMOST LRS grid: a physical template, calibrated on real spectra.

The model, in natural-log flux at rest-frame vacuum wavelength lambda, for labels (Teff, log g, [M/H]):

    ln F = ln B_lambda(Teff)                       blackbody continuum
           - sum_b s_b(labels) * P_b(lambda)       molecular bands + atomic lines (paper §3.2.2 physics)
           + phi(labels) . C(lambda)               data-calibrated correction (ridge fit, calibrate.py)

then normalised to median 1 over 7400-7500 Å.  P_b are band/line profiles already seen through
the R~1800 line-spread function (so no convolution is needed at run time), s_b the label
dependence of each feature (TiO/CaH deepen as Teff falls and change with [M/H]; Na I / K I grow
with log g; the Ca II triplet grows in giants), phi monomials in scaled labels and C their
per-pixel coefficients, fitted in log flux by ridge regression *toward the physical template*
(where no real spectrum constrains a pixel the physics remains).  Every term after ln B is a
matrix product, so a batch of stars costs two small GEMMs.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from numba import njit

LOGLAM0 = 3.5682          # LAMOST LRS grid, log10 vacuum Å of pixel 0
DLOGLAM = 1e-4
N_PIX = 3909
RESOLVING_POWER = 1800.0
NORM_WAVE_AA = (7400.0, 7500.0)   # vacuum window where every spectrum has median 1
FAMILIES = ("bt_settl_like", "marcs_like")

# internal model grid: the LAMOST grid extended to 3500-10000 Å (MILES starts at 3540 Å)
_N_BLUE_EXTRA = 241
MODEL_LOGLAM0 = LOGLAM0 - _N_BLUE_EXTRA * DLOGLAM
MODEL_N_PIX = 4559
COEFFS_PATH = Path(__file__).with_name("spectra_coeffs.npz")

_C2_UM_K = 14387.77       # second radiation constant hc/k in µm K


def lamost_wave_aa(n_pix: int = N_PIX) -> np.ndarray:
    """Vacuum wavelengths (Å) of the native LAMOST LRS log-linear grid."""
    return 10.0 ** (LOGLAM0 + DLOGLAM * np.arange(n_pix))


def model_wave_aa() -> np.ndarray:
    """Vacuum wavelengths (Å) of the internal model grid (LAMOST grid extended to 3500-10000 Å)."""
    return 10.0 ** (MODEL_LOGLAM0 + DLOGLAM * np.arange(MODEL_N_PIX))


def scaled_labels(teff_k, logg_dex, mh_dex) -> np.ndarray:
    """(n, 3) labels scaled to order unity: t=(Teff-3800)/600, g=(log g-3)/2, m=[M/H]/0.5."""
    teff_k, logg_dex, mh_dex = np.broadcast_arrays(np.atleast_1d(np.asarray(teff_k, float)),
                                                  np.atleast_1d(np.asarray(logg_dex, float)),
                                                  np.atleast_1d(np.asarray(mh_dex, float)))
    return np.stack([(teff_k - 3800.0) / 600.0, (logg_dex - 3.0) / 2.0, mh_dex / 0.5], axis=1)


# ---------------------------------------------------------------------------------------------
# physical template: features, their profiles and their label dependence
# ---------------------------------------------------------------------------------------------
# (name, kind, vacuum centre or band-head Å, width Å): "band" = sharp head degrading to the red
# with e-folding `width`; "line" = Gaussian of intrinsic sigma `width` (pressure-broadened
# strong lines are wide).  Wavelengths: air values from the literature + 2 Å (air->vac near 7000 Å).
_FEATURES: tuple[tuple[str, str, float, float], ...] = (
    ("tio_4955", "band", 4956.0, 60.0),
    ("tio_5167", "band", 5168.0, 80.0),
    ("tio_5448", "band", 5450.0, 80.0),
    ("tio_5847", "band", 5849.0, 80.0),
    ("tio_6159", "band", 6161.0, 90.0),
    ("tio_6651", "band", 6653.0, 60.0),
    ("tio_7054", "band", 7055.0, 110.0),
    ("tio_7589", "band", 7591.0, 50.0),
    ("tio_7666", "band", 7668.0, 80.0),
    ("tio_8432", "band", 8434.0, 90.0),
    ("tio_8859", "band", 8861.0, 80.0),
    ("cah_6382", "band", 6384.0, 25.0),
    ("cah_6830", "band", 6832.0, 70.0),
    ("vo_7400", "band", 7336.0, 120.0),
    ("vo_7850", "band", 7853.0, 100.0),
    ("nai_8185", "line", 8185.5, 1.5),
    ("nai_8197", "line", 8197.1, 1.5),
    ("ki_7667", "line", 7667.0, 2.0),
    ("ki_7701", "line", 7701.1, 2.0),
    ("cat_8500", "line", 8500.4, 1.2),
    ("cat_8544", "line", 8544.4, 1.5),
    ("cat_8665", "line", 8664.5, 1.3),
    ("nad_5892", "line", 5891.6, 2.0),
    ("nad_5898", "line", 5897.6, 2.0),
    ("mgb_5175", "line", 5176.0, 3.0),
    ("cai_4227", "line", 4227.9, 2.5),
    ("cai_6124", "line", 6123.9, 1.0),
    ("cai_6164", "line", 6164.2, 1.0),
    ("halpha", "line", 6564.6, 1.0),
)
FEATURE_NAMES = tuple(f[0] for f in _FEATURES)


def _lsf_sigma_aa(wave_aa):
    return wave_aa / (RESOLVING_POWER * 2.3548)


def feature_profiles(wave_vac_aa: np.ndarray) -> np.ndarray:
    """(n_feature, n_pix) optical-depth profiles P_b seen at R~1800 (peak ~1)."""
    from scipy.special import erf

    wave = np.asarray(wave_vac_aa, dtype=np.float64)
    out = np.zeros((len(_FEATURES), wave.size))
    for i, (_, kind, centre, width) in enumerate(_FEATURES):
        lsf = _lsf_sigma_aa(centre)
        if kind == "line":
            sig = np.hypot(lsf, width)
            # unit peak at the intrinsic width: equivalent width fixed, LSF lowers the peak
            out[i] = (width / sig) * np.exp(-0.5 * ((wave - centre) / sig) ** 2)
        else:
            dx = wave - centre
            head = 0.5 * (1.0 + erf(dx / (np.sqrt(2.0) * lsf)))
            out[i] = head * np.exp(-np.clip(dx, 0.0, None) / width)
    return out


def _cool(teff_k, t0, power):
    return np.clip((t0 - teff_k) / 1000.0, 0.0, None) ** power


STRENGTH_GROUPS = ("tio", "cah", "vo", "alkali", "cat")


def strength_groups(teff_k, logg_dex, mh_dex) -> dict[str, np.ndarray]:
    """The five nonlinear label dependences shared by the template features (see below)."""
    teff_k, logg_dex, mh_dex = np.broadcast_arrays(np.atleast_1d(np.asarray(teff_k, float)),
                                                  np.atleast_1d(np.asarray(logg_dex, float)),
                                                  np.atleast_1d(np.asarray(mh_dex, float)))
    metal = np.exp(1.1 * mh_dex)
    dwarfness = np.clip((logg_dex - 1.0) / 4.0, 0.0, 1.3)
    giantness = np.clip((4.5 - logg_dex) / 4.0, 0.0, 1.3)
    return {
        "tio": 0.9 * _cool(teff_k, 4300.0, 1.6) * metal,
        "cah": 0.9 * _cool(teff_k, 4200.0, 1.4) * dwarfness ** 2 * np.exp(0.3 * mh_dex),
        "vo": 0.6 * _cool(teff_k, 3300.0, 1.5) * metal,
        "alkali": (0.3 + 1.6 * dwarfness) * (0.4 + _cool(teff_k, 4600.0, 1.0)) * np.exp(0.6 * mh_dex),
        "cat": (0.45 + 0.5 * giantness) * np.exp(0.4 * mh_dex) * np.clip(teff_k / 4000.0, 0.6, 1.3),
    }


def feature_strengths(teff_k, logg_dex, mh_dex) -> np.ndarray:
    """(n, n_feature) optical depths s_b(labels) of the template features.

    Physics, qualitatively (paper §3.2.2, Figs 11-13): TiO deepens steeply as Teff falls and
    with [M/H]; CaH likewise but is a dwarf (high-gravity) band, relatively stronger in
    metal-poor dwarfs; VO appears only below ~3300 K; Na I 8183/8195, K I 7665/7699, Na D and
    Ca I 6122/6162 grow with log g (pressure broadening); the Ca II triplet grows in giants.
    """
    g = strength_groups(teff_k, logg_dex, mh_dex)
    teff_k, logg_dex, mh_dex = np.broadcast_arrays(np.atleast_1d(np.asarray(teff_k, float)),
                                                  np.atleast_1d(np.asarray(logg_dex, float)),
                                                  np.atleast_1d(np.asarray(mh_dex, float)))
    metal = np.exp(1.1 * mh_dex)
    dwarfness = np.clip((logg_dex - 1.0) / 4.0, 0.0, 1.3)
    tio, cah, vo, alkali, cat = (g[k] for k in STRENGTH_GROUPS)
    weights = {
        "tio_4955": 0.7 * tio, "tio_5167": 0.8 * tio, "tio_5448": 0.7 * tio, "tio_5847": 0.6 * tio,
        "tio_6159": 0.7 * tio, "tio_6651": 0.5 * tio, "tio_7054": 1.0 * tio,
        "tio_7589": 0.6 * tio, "tio_7666": 0.6 * tio, "tio_8432": 0.5 * tio, "tio_8859": 0.4 * tio,
        "cah_6382": 0.5 * cah, "cah_6830": 0.6 * cah, "vo_7400": 0.7 * vo, "vo_7850": 0.5 * vo,
        "nai_8185": 0.9 * alkali, "nai_8197": 1.0 * alkali,
        "ki_7667": 1.0 * alkali, "ki_7701": 0.9 * alkali,
        "cat_8500": 0.5 * cat, "cat_8544": 0.9 * cat, "cat_8665": 0.7 * cat,
        "nad_5892": 1.2 * alkali, "nad_5898": 1.0 * alkali,
        "mgb_5175": 0.6 * (0.5 + 0.5 * dwarfness) * metal,
        "cai_4227": 1.2 * (0.5 + dwarfness) * metal,
        "cai_6124": 0.5 * (0.3 + dwarfness) * metal, "cai_6164": 0.5 * (0.3 + dwarfness) * metal,
        "halpha": 0.3 * np.clip(teff_k / 4000.0, 0.5, 1.5),
    }
    return np.stack([weights[name] for name in FEATURE_NAMES], axis=1)


def ln_blackbody(teff_k, wave_vac_aa) -> np.ndarray:
    """(n, n_pix) natural log of B_lambda(Teff) up to a constant (float64)."""
    teff_k = np.atleast_1d(np.asarray(teff_k, dtype=np.float64))
    wave_um = np.asarray(wave_vac_aa, dtype=np.float64) * 1e-4
    x = _C2_UM_K / (wave_um[None, :] * teff_k[:, None])
    return -5.0 * np.log(wave_um)[None, :] - x - np.log1p(-np.exp(-x))


# ---------------------------------------------------------------------------------------------
# calibrated correction
# ---------------------------------------------------------------------------------------------
def design_matrix(scaled: np.ndarray, exponents: np.ndarray) -> np.ndarray:
    """(n, n_term) monomials prod_j scaled[:, j] ** exponents[k, j] of the scaled labels."""
    scaled = np.asarray(scaled, dtype=np.float64)
    out = np.ones((scaled.shape[0], exponents.shape[0]))
    for k, exps in enumerate(exponents):
        for j, e in enumerate(exps):
            if e:
                out[:, k] *= scaled[:, j] ** e
    return out


def correction_basis(labels: np.ndarray, exponents: np.ndarray) -> np.ndarray:
    """(n, n_term) regressors of the correction: label monomials, then the template's own
    nonlinear strength functions (``STRENGTH_GROUPS``), so each pixel can rescale the physics."""
    labels = np.asarray(labels, dtype=np.float64)
    groups = strength_groups(labels[:, 0], labels[:, 1], labels[:, 2])
    return np.concatenate([design_matrix(scaled_labels(*labels.T), exponents),
                           np.stack([groups[k] for k in STRENGTH_GROUPS], axis=1)], axis=1)


def monomial_exponents(max_degree: int, teff_degree: int | None = None) -> np.ndarray:
    """Exponents (a, b, c) of t^a g^b m^c with a+b+c <= max_degree (a <= teff_degree)."""
    teff_degree = max_degree if teff_degree is None else teff_degree
    rows = [(a, b, c) for a in range(teff_degree + 1) for b in range(max_degree + 1)
            for c in range(max_degree + 1) if b + c <= max_degree and (a + b + c <= max_degree
                                                                        or b + c == 0)]
    return np.array(sorted(rows, key=lambda r: (sum(r), r)), dtype=np.int64)


DEFAULT_EXPONENTS = monomial_exponents(3)


class SpectrumModel:
    """Template + correction coefficients; ``flux`` evaluates a batch of stars.

    ``coeffs`` has shape (n_term, MODEL_N_PIX) on the internal model grid; zeros give the pure
    physical template.  Label bounds clamp extrapolation to the calibrated domain.
    """

    def __init__(self, exponents: np.ndarray, coeffs: np.ndarray,
                 label_lo=(2600.0, -0.5, -2.5), label_hi=(5500.0, 5.5, 1.0),
                 feature_scale: np.ndarray | None = None):
        self.exponents = np.asarray(exponents, dtype=np.int64)
        # per-feature multiplier of the template strengths (calibrated on LAMOST for red lines)
        self.feature_scale = (np.ones(len(_FEATURES)) if feature_scale is None
                              else np.asarray(feature_scale, dtype=np.float64))
        self.coeffs = np.asarray(coeffs, dtype=np.float32)
        self.label_lo = np.asarray(label_lo, dtype=np.float64)
        self.label_hi = np.asarray(label_hi, dtype=np.float64)
        assert self.coeffs.shape == (self.exponents.shape[0] + len(STRENGTH_GROUPS), MODEL_N_PIX)
        wave = model_wave_aa()
        self._profiles = feature_profiles(wave).astype(np.float32)
        # ln B tabulated every 10 K (linear-interpolation error < 1e-4): exp/log per pixel is
        # the slowest part of the model otherwise
        self._bb_teff = np.arange(self.label_lo[0], self.label_hi[0] + 10.0, 10.0)
        self._bb_table = ln_blackbody(self._bb_teff, wave).astype(np.float32)
        lo, hi = np.searchsorted(wave, NORM_WAVE_AA)
        self._norm = slice(lo, hi)

    def _rows(self, wave_vac_aa):
        """Coefficient + profile rows resampled to ``wave_vac_aa`` (slice when on-grid)."""
        wave = np.asarray(wave_vac_aa, dtype=np.float64)
        pix = (np.log10(wave) - MODEL_LOGLAM0) / DLOGLAM
        first = int(round(pix[0]))
        on_grid = (np.allclose(pix, first + np.arange(wave.size), atol=1e-3)
                   and first >= 0 and first + wave.size <= MODEL_N_PIX)
        if on_grid:
            sl = slice(first, first + wave.size)
            return self.coeffs[:, sl], self._profiles[:, sl], self._bb_table[:, sl]
        if pix.min() < 0 or pix.max() > MODEL_N_PIX - 1:
            raise ValueError(f"wavelengths {wave.min():.0f}-{wave.max():.0f} Å outside the model "
                             "grid 3500-10000 Å")
        i0 = np.clip(np.floor(pix).astype(np.int64), 0, MODEL_N_PIX - 2)
        w = (pix - i0).astype(np.float32)
        interp = lambda a: a[:, i0] * (1 - w) + a[:, i0 + 1] * w  # noqa: E731
        return interp(self.coeffs), feature_profiles(wave).astype(np.float32), None

    def _prepare(self, teff_k, logg_dex, mh_dex):
        teff_k, logg_dex, mh_dex = np.broadcast_arrays(*(np.atleast_1d(np.asarray(a, float))
                                                        for a in (teff_k, logg_dex, mh_dex)))
        labels = np.clip(np.stack([teff_k, logg_dex, mh_dex], 1), self.label_lo, self.label_hi)
        phi = correction_basis(labels, self.exponents)
        # one GEMM for correction and template features: [phi, -s] @ [C; P]
        strength = feature_strengths(*labels.T) * self.feature_scale[None, :]
        lhs = np.concatenate([phi, -strength], axis=1).astype(np.float32)
        pos = (labels[:, 0] - self._bb_teff[0]) / 10.0
        i0 = np.clip(pos.astype(np.int64), 0, self._bb_teff.size - 2)
        return labels, lhs, i0, (pos - i0).astype(np.float32)

    def _ln_flux(self, prepared, wave_vac_aa, ln_norm=None, exponentiate=False):
        labels, lhs, i0, frac = prepared
        coeffs, profiles, bb_table = self._rows(wave_vac_aa)
        out = lhs @ np.concatenate([coeffs, profiles], axis=0)
        if ln_norm is None:
            ln_norm = np.zeros(out.shape[0], np.float32)
        if bb_table is None:
            out += ln_blackbody(labels[:, 0], wave_vac_aa).astype(np.float32)
            out -= ln_norm[:, None]
            return np.exp(out, out=out) if exponentiate else out
        _add_bb_inplace(out, bb_table, i0, frac, ln_norm.astype(np.float32), exponentiate)
        return out

    def ln_flux(self, teff_k, logg_dex, mh_dex, wave_vac_aa) -> np.ndarray:
        """(n, n_pix) float32 natural-log flux before normalisation."""
        return self._ln_flux(self._prepare(teff_k, logg_dex, mh_dex), wave_vac_aa)

    def ln_norm(self, prepared) -> np.ndarray:
        """(n,) ln of the median flux over 7400-7500 Å."""
        return np.median(self._ln_flux(prepared, model_wave_aa()[self._norm]), axis=1)

    def flux(self, teff_k, logg_dex, mh_dex, wave_vac_aa) -> np.ndarray:
        """(n, n_pix) float32 flux normalised to median 1 over 7400-7500 Å (vacuum)."""
        prepared = self._prepare(teff_k, logg_dex, mh_dex)
        return self._ln_flux(prepared, wave_vac_aa, self.ln_norm(prepared), exponentiate=True)


@njit(cache=True, fastmath=True)
def _add_bb_inplace(out, bb_table, i0, frac, ln_norm, exponentiate):
    """out += ln B (interpolated in Teff) - ln_norm; optionally exp() in place (fused: one pass)."""
    for i in range(out.shape[0]):
        lo = bb_table[i0[i]]
        hi = bb_table[i0[i] + 1]
        f = frac[i]
        for j in range(out.shape[1]):
            v = out[i, j] + lo[j] + f * (hi[j] - lo[j]) - ln_norm[i]
            out[i, j] = np.exp(v) if exponentiate else v


@lru_cache(maxsize=1)
def default_model() -> SpectrumModel:
    """The committed calibrated model (``spectra_coeffs.npz``), else the pure physical template."""
    if COEFFS_PATH.exists():
        with np.load(COEFFS_PATH) as npz:
            scale = npz["feature_scale"] if "feature_scale" in npz.files else None
            return SpectrumModel(npz["exponents"], npz["coeffs"], npz["label_lo"], npz["label_hi"],
                                 scale)
    n_term = DEFAULT_EXPONENTS.shape[0] + len(STRENGTH_GROUPS)
    return SpectrumModel(DEFAULT_EXPONENTS, np.zeros((n_term, MODEL_N_PIX), np.float32))


def intrinsic_flux(teff_k, logg_dex, mh_dex, wave_vac_aa) -> np.ndarray:
    """(n_star, n_pix) float32 rest-frame intrinsic spectra at R~1800, median 1 over 7400-7500 Å.

    >>> intrinsic_flux([3500.0], [4.8], [0.0], lamost_wave_aa()).shape
    (1, 3909)
    """
    return default_model().flux(teff_k, logg_dex, mh_dex, wave_vac_aa)


# ---------------------------------------------------------------------------------------------
# reference SED families for recalibration (paper §2.3.2) and their documented mismatch
# ---------------------------------------------------------------------------------------------
BT_SETTL_GIANT_TILT = 0.15   # fractional flux change per 2500 Å, full giants (log g <= 2)
MARCS_DWARF_BLUE_EXCESS = 0.30  # fractional excess at 3700 Å, full dwarfs (log g >= 4.5)


def sed_mismatch(family: str, teff_k, logg_dex, mh_dex, wave_vac_aa) -> np.ndarray:
    """(n, n_pix) multiplicative mismatch model_sed / intrinsic_flux (before renormalising).

    * ``bt_settl_like`` fits dwarfs exactly (factor 1 for log g >= 4) and is poor for giants: a
      linear tilt 1 + 0.15 * w_g * (lambda - 7450 Å) / 2500 Å with giantness
      w_g = clip((4 - log g) / 2, 0, 1) (red too bright, blue too faint).
    * ``marcs_like`` fits giants exactly (factor 1 for log g <= 4) and has a blue flux excess for
      dwarfs, like the paper's: 1 + 0.30 * w_d * clip((5000 Å - lambda) / 1300 Å, 0, inf)^2 with
      w_d = clip((log g - 4) / 0.5, 0, 1): zero above 5000 Å, +30% at 3700 Å for log g >= 4.5.
    Both are 1 at 7450 Å, so renormalising over 7400-7500 Å leaves them (nearly) unchanged.
    """
    logg = np.atleast_1d(np.asarray(logg_dex, dtype=np.float64))
    logg = np.broadcast_to(logg, np.broadcast_shapes(logg.shape, np.shape(np.atleast_1d(teff_k))))
    wave = np.asarray(wave_vac_aa, dtype=np.float64)[None, :]
    if family == "bt_settl_like":
        w_g = np.clip((4.0 - logg) / 2.0, 0.0, 1.0)[:, None]
        return 1.0 + BT_SETTL_GIANT_TILT * w_g * (wave - 7450.0) / 2500.0
    if family == "marcs_like":
        w_d = np.clip((logg - 4.0) / 0.5, 0.0, 1.0)[:, None]
        return 1.0 + MARCS_DWARF_BLUE_EXCESS * w_d * np.clip((5000.0 - wave) / 1300.0, 0.0, None) ** 2
    raise ValueError(f"unknown SED family {family!r}; expected one of {FAMILIES}")


def model_sed(family: str, teff_k, logg_dex, mh_dex, wave_vac_aa) -> np.ndarray:
    """(n, n_pix) float32 reference-grid SED: the generator times ``sed_mismatch``, renormalised."""
    model = default_model()
    ln_f = model.ln_flux(teff_k, logg_dex, mh_dex, wave_vac_aa)
    ln_f += np.log(sed_mismatch(family, teff_k, logg_dex, mh_dex, wave_vac_aa)).astype(np.float32)
    norm_wave = model_wave_aa()[model._norm]
    ln_norm = np.median(model.ln_flux(teff_k, logg_dex, mh_dex, norm_wave)
                        + np.log(sed_mismatch(family, teff_k, logg_dex, mh_dex, norm_wave)), axis=1)
    ln_f -= ln_norm[:, None].astype(np.float32)
    return np.exp(ln_f, out=ln_f)
