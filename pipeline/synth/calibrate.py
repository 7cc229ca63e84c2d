"""Fit the spectrum generator's correction coefficients on real spectra; write ``spectra_coeffs.npz``.

    python -m mgold.pipeline.synth.calibrate --real ../shared/data/real --out pipeline/synth/spectra_coeffs.npz

Training data (``../shared/data/real/libraries``), all brought to the model grid (vacuum, log-linear,
R = 1800) in natural-log flux, each star with a free constant (its flux scale is arbitrary):

* MILES K/M stars with their catalogue labels (Teff, log g, [Fe/H] taken as [M/H]); air -> vacuum,
  2.5 Å FWHM degraded to R = 1800 (where MILES is sharper), 3540-7410 Å.
* Pickles (1998) solar-abundance K4-M6 dwarfs and K4-M6 giants, fitted on their own over
  6300-10000 Å and used where MILES has no data (blended in over 7385-7408 Å; both fits see the
  overlap, so the continuum level is continuous).  Pickles gives spectral types, not labels; the
  labels assigned per type (``PICKLES_LABELS``) follow Pecaut & Mamajek (2013) for dwarfs and
  van Belle et al. (1999) for giants, with log g from solar-metallicity PARSEC-like sequences and
  [M/H] = 0 (the library's solar-abundance spectra).  Pickles is R ~ 500, so its residuals are
  taken against the model smoothed to R = 500: the correction learns the smooth shape there and
  the R = 1800 line/band profiles stay those of the physical template.
* Real LAMOST M dwarfs (``LAMOST_DWARFS``: M0, M2, dM5 with measured redshifts; labels from the
  dwarf scale above): the R = 1800 depths of the red lines nothing else constrains (Na I
  8183/8195, K I 7665/7699, Ca II triplet) as one strength multiplier per line group.

The correction is per-pixel ridge regression, in log flux, of (data - physical template) on the
basis ``correction_basis`` (monomials of the scaled labels + the template's own nonlinear
feature strengths), shrinking toward the template.  ``fit_correction`` is the re-runnable core:
``validate.py`` calls it on k-fold subsets in-process.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mgold.pipeline.ingest.library import (MILES_DIR, MILES_FILE_GLOB, MILES_FWHM_AA, MILES_LABEL_FILE,
                                           air_to_vac_aa, degrade_sigma_aa, gaussian_smoothing_matrix,
                                           miles_star_id, read_miles_labels, read_miles_spectrum)
from mgold.pipeline.synth import spectra_model as sm

PICKLES_DIR = Path("libraries/pickles1998_k_m")
MILES_MAX_TEFF_K = 5300.0
PICKLES_R = 500.0
PICKLES_ALPHA_FACTOR = 5.0            # 20 Pickles stars vs ~470 MILES: shrink harder
PICKLES_BLEND_AA = (7385.0, 7408.0)   # MILES -> Pickles hand-over, at the MILES red end (vacuum)
# Pickles type -> (Teff K, log g dex, [M/H] dex); see module docstring for the sources
PICKLES_LABELS: dict[str, tuple[float, float, float]] = {
    "k4v": (4600.0, 4.60, 0.0), "k5v": (4440.0, 4.62, 0.0), "k7v": (4050.0, 4.66, 0.0),
    "m0v": (3850.0, 4.70, 0.0), "m1v": (3660.0, 4.75, 0.0), "m2v": (3560.0, 4.80, 0.0),
    "m2p5v": (3430.0, 4.85, 0.0), "m3v": (3410.0, 4.87, 0.0), "m4v": (3210.0, 4.95, 0.0),
    "m5v": (3060.0, 5.05, 0.0), "m6v": (2810.0, 5.15, 0.0),
    "k4iii": (4100.0, 1.90, 0.0), "k5iii": (3980.0, 1.65, 0.0), "m0iii": (3870.0, 1.45, 0.0),
    "m1iii": (3800.0, 1.30, 0.0), "m2iii": (3720.0, 1.15, 0.0), "m3iii": (3620.0, 0.95, 0.0),
    "m4iii": (3530.0, 0.75, 0.0), "m5iii": (3420.0, 0.55, 0.0), "m6iii": (3300.0, 0.35, 0.0),
}


@dataclass
class TrainingSet:
    """Stars on the model grid: labels (n, 3), ln flux (n, n_pix), weight (n, n_pix), source."""

    labels: np.ndarray
    ln_flux: np.ndarray
    weight: np.ndarray
    name: list[str]

    def subset(self, idx) -> "TrainingSet":
        return TrainingSet(self.labels[idx], self.ln_flux[idx], self.weight[idx],
                           [self.name[i] for i in np.arange(len(self.name))[idx]])


# ---------------------------------------------------------------------------------------------
# loaders
# ---------------------------------------------------------------------------------------------
def load_miles(real_dir: Path, max_teff_k: float = MILES_MAX_TEFF_K) -> TrainingSet:
    """MILES stars with labels and Teff <= ``max_teff_k`` on the model grid at R = 1800."""
    label_path = Path(real_dir) / MILES_DIR / MILES_LABEL_FILE
    labels, problems = read_miles_labels(label_path)
    for lineno, why in problems:
        print(f"{label_path}:{lineno}: skipped {why}", file=sys.stderr)
    labels = {k: v for k, v in labels.items() if all(np.isfinite(v))}
    files = sorted((Path(real_dir) / MILES_DIR).glob(MILES_FILE_GLOB))
    wave_model = sm.model_wave_aa()
    kernel, wave_vac, names, lab, rows = None, None, [], [], []
    for path in files:
        sid = miles_star_id(path)
        if sid not in labels or labels[sid][0] > max_teff_k:
            continue
        wave_air, flux, _ = read_miles_spectrum(path)
        if kernel is None or kernel.shape[0] != flux.size:
            kernel = gaussian_smoothing_matrix(wave_air, degrade_sigma_aa(wave_air, MILES_FWHM_AA,
                                                                          sm.RESOLVING_POWER))
            wave_vac = air_to_vac_aa(wave_air)
        good = np.isfinite(flux) & (flux > 0)
        if good.mean() < 0.9:
            continue
        flux = kernel @ np.where(good, flux, 0.0)
        names.append(sid), lab.append(labels[sid]), rows.append(flux)
    flux = np.array(rows)
    ln_flux = np.full((flux.shape[0], wave_model.size), 0.0, np.float32)
    inside = (wave_model >= wave_vac[3]) & (wave_model <= wave_vac[-4])
    for i, f in enumerate(flux):
        ln_flux[i, inside] = np.log(np.clip(np.interp(wave_model[inside], wave_vac, f), 1e-30, None))
    weight = np.zeros_like(ln_flux)
    weight[:, inside] = 1.0
    return TrainingSet(np.array(lab), ln_flux, weight, names)


def load_pickles(real_dir: Path) -> TrainingSet:
    """Pickles K4-M6 dwarfs and giants (labels from ``PICKLES_LABELS``) on the model grid."""
    wave_model = sm.model_wave_aa()
    names, lab, rows = [], [], []
    for name, labels in PICKLES_LABELS.items():
        path = Path(real_dir) / PICKLES_DIR / f"{name}.dat"
        if not path.exists():
            continue
        data = np.loadtxt(path, usecols=(0, 1))
        wave_air, flux = data[:, 0], data[:, 1]
        keep = flux > 0
        # Pickles wavelengths are air (ground-based spectrophotometry)
        f = np.interp(wave_model, air_to_vac_aa(wave_air[keep]), flux[keep])
        names.append(name), lab.append(labels), rows.append(np.log(f))
    ln_flux = np.array(rows, dtype=np.float32)
    weight = np.ones_like(ln_flux)
    return TrainingSet(np.array(lab), ln_flux, weight, names)


def _taper(wave, window, rising: bool) -> np.ndarray:
    x = np.clip((wave - window[0]) / (window[1] - window[0]), 0.0, 1.0)
    return x if rising else 1.0 - x


# ---------------------------------------------------------------------------------------------
# the fit
# ---------------------------------------------------------------------------------------------
def template_ln_flux(labels: np.ndarray, resolving_power: float | None = None) -> np.ndarray:
    """(n, n_pix) ln flux of the physical template (zero correction), optionally smoothed to R."""
    n_term = 1 + len(sm.STRENGTH_GROUPS)
    model = sm.SpectrumModel(np.zeros((1, 3), np.int64), np.zeros((n_term, sm.MODEL_N_PIX), np.float32))
    ln_f = model.ln_flux(labels[:, 0], labels[:, 1], labels[:, 2], sm.model_wave_aa()).astype(float)
    if resolving_power is None:
        return ln_f
    wave = sm.model_wave_aa()
    kernel = gaussian_smoothing_matrix(wave, degrade_sigma_aa(wave, wave / sm.RESOLVING_POWER,
                                                              resolving_power))
    return np.log((kernel @ np.exp(ln_f - ln_f.max(1, keepdims=True)).T).T) + ln_f.max(1, keepdims=True)


def ridge_per_pixel(phi: np.ndarray, target: np.ndarray, weight: np.ndarray,
                    alpha: np.ndarray) -> np.ndarray:
    """(n_term, n_pix) per-pixel weighted ridge: argmin sum_i w_ip (y_ip - phi_i c_p)^2 + alpha c_p^2."""
    n_term = phi.shape[1]
    gram = np.einsum("ik,il,ip->pkl", phi, phi, weight, optimize=True)
    gram[:, np.arange(n_term), np.arange(n_term)] += alpha[None, :]
    rhs = np.einsum("ik,ip->pk", phi, weight * target, optimize=True)
    return np.linalg.solve(gram, rhs[..., None])[..., 0].T


def fit_correction(train: TrainingSet, exponents: np.ndarray, alpha: float = 1.0,
                   template: np.ndarray | None = None, n_iter: int = 3,
                   offset_weight: np.ndarray | None = None) -> np.ndarray:
    """(n_term, MODEL_N_PIX) correction coefficients fitted to ``train``.

    Alternates per-star constants (each star's arbitrary flux scale, measured over its weighted
    pixels, or over ``offset_weight`` when given) with the per-pixel ridge fit.  The constant
    column is not penalised.
    """
    if template is None:
        template = template_ln_flux(train.labels)
    phi = sm.correction_basis(train.labels, exponents)
    resid = train.ln_flux - template
    ow = train.weight if offset_weight is None else offset_weight
    wsum = np.maximum(ow.sum(1), 1e-9)
    alpha_vec = np.full(phi.shape[1], alpha)
    alpha_vec[0] = 1e-6
    offset = (ow * resid).sum(1) / wsum
    for _ in range(n_iter):
        coeffs = ridge_per_pixel(phi, resid - offset[:, None], train.weight, alpha_vec)
        offset = (ow * (resid - phi @ coeffs)).sum(1) / wsum
    return coeffs.astype(np.float32)


def pickles_line_mask(wave_aa: np.ndarray) -> np.ndarray:
    """Pixels where R~500 Pickles cannot calibrate the R=1800 model: strong template lines
    (their depth stays the template's) and the telluric A band Pickles may carry."""
    mask = (wave_aa > 7590.0) & (wave_aa < 7715.0)
    for name, kind, centre, _ in sm._FEATURES:
        if kind == "line":
            mask |= np.abs(wave_aa - centre) < 3.0 * centre / PICKLES_R / 2.3548
    return mask


def bridge_masked(coeffs: np.ndarray, masked: np.ndarray) -> np.ndarray:
    """Replace masked columns by linear interpolation between the nearest unmasked ones."""
    x = np.arange(coeffs.shape[1])
    out = coeffs.copy()
    for row in out:
        row[masked] = np.interp(x[masked], x[~masked], row[~masked])
    return out


def smooth_rows(coeffs: np.ndarray, resolving_power: float) -> np.ndarray:
    """Gaussian-smooth each coefficient row to FWHM lambda / R: no sharper than its data."""
    wave = sm.model_wave_aa()
    kernel = gaussian_smoothing_matrix(wave, wave / resolving_power / 2.3548)
    return np.asarray((kernel @ coeffs.T.astype(float)).T, dtype=np.float32)


def fit_pickles_red(pickles: TrainingSet, exponents: np.ndarray, alpha: float) -> np.ndarray:
    """Smooth correction from Pickles against the template seen at R~500 (scales tied to 6500-7300 Å)."""
    wave = sm.model_wave_aa()
    masked = pickles_line_mask(wave)
    train = pickles.subset(np.arange(len(pickles.name)))
    train.weight = ((wave > 6300.0) & ~masked).astype(np.float32)[None, :].repeat(len(train.name), 0)
    anchor = ((wave > 6500.0) & (wave < PICKLES_BLEND_AA[0])).astype(float)
    red = fit_correction(train, exponents, alpha, template=template_ln_flux(train.labels, PICKLES_R),
                         offset_weight=np.broadcast_to(anchor, train.weight.shape))
    return smooth_rows(bridge_masked(red, masked), PICKLES_R)


def fit_generator(miles: TrainingSet, red: np.ndarray | None, exponents: np.ndarray,
                  alpha: float = 1.0, template: np.ndarray | None = None) -> np.ndarray:
    """Coefficients: MILES fit blue of the join, Pickles fit (``red``) red of it, blended linearly."""
    coeffs = fit_correction(miles, exponents, alpha, template=template)
    if red is None:
        return coeffs
    wave = sm.model_wave_aa()
    # each fit's level is free per label term (star scales are free): tie Pickles to MILES
    anchor = (wave > 6500.0) & (wave < PICKLES_BLEND_AA[0])
    red = red - (red[:, anchor] - coeffs[:, anchor]).mean(axis=1, keepdims=True)
    taper = _taper(wave, PICKLES_BLEND_AA, rising=True)[None, :]
    return (coeffs * (1.0 - taper) + red * taper).astype(np.float32)


# real LAMOST M dwarfs with a measured redshift: (file, subclass); labels from PICKLES_LABELS' dwarf scale
LAMOST_DWARFS = (
    ("lamost/dr7_mdwarfs_m31field/spec-55863-M31_011N40_B1_sp07-211.fits.gz", "m0v"),
    ("lamost/dr7_mdwarfs_m31field/spec-55863-M31_011N40_B1_sp08-025.fits.gz", "m2v"),
    ("lamost/dr9_dr13_table_format/spec-60591-LN042429N340750BM01_sp01-004.fits.gz", "m5v"),
)
# template lines whose R=1800 depth only LAMOST constrains (MILES ends at 7410 Å, Pickles is R~500)
LAMOST_LINE_GROUPS = {"alkali_red": ("nai_8185", "nai_8197", "ki_7667", "ki_7701"),
                      "cat": ("cat_8500", "cat_8544", "cat_8665")}


def load_lamost_dwarfs(real_dir: Path) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, tuple]]:
    """[(rest-frame vacuum wave, flux, ivar, labels)] of the real LAMOST M dwarfs (both layouts)."""
    from astropy.io import fits

    out = []
    for rel, sptype in LAMOST_DWARFS:
        path = Path(real_dir) / rel
        if not path.exists():
            continue
        with fits.open(path) as hdul:
            z = float(hdul[0].header.get("Z", 0.0))
            if hdul[0].data is not None:
                flux, ivar, wave = (np.asarray(hdul[0].data[i], float) for i in (0, 1, 2))
            else:
                row = hdul[1].data[0]
                flux, ivar, wave = (np.asarray(row[k], float) for k in ("FLUX", "IVAR", "WAVELENGTH"))
        z = 0.0 if z < -1 else z   # -9999 = no redshift
        out.append((wave / (1.0 + z), flux, ivar, PICKLES_LABELS[sptype]))
    return out


def fit_line_scales(model: sm.SpectrumModel, dwarfs, grid=np.geomspace(0.03, 3.0, 61)) -> np.ndarray:
    """Per-feature strength multipliers: for each line group, the grid value minimising the
    ivar-weighted residual of data / model (each line window's linear trend removed)."""
    scale = model.feature_scale.copy()
    for group in LAMOST_LINE_GROUPS.values():
        idx = [sm.FEATURE_NAMES.index(n) for n in group]
        centres = [sm._FEATURES[i][2] for i in idx]
        cost = np.zeros(grid.size)
        for g, value in enumerate(grid):
            trial = scale.copy()
            trial[idx] = value
            m = sm.SpectrumModel(model.exponents, model.coeffs, model.label_lo, model.label_hi, trial)
            for wave, flux, ivar, labels in dwarfs:
                win = np.zeros(wave.size, bool)
                for c in centres:
                    win |= np.abs(wave - c) < 25.0
                good = win & (ivar > 0) & np.isfinite(flux)
                mod = m.flux(*labels, wave[good])[0]
                ratio = flux[good] / mod
                vander = np.vander(wave[good] - wave[good].mean(), 2)
                coef, *_ = np.linalg.lstsq(vander, ratio, rcond=None)
                resid = ratio / (vander @ coef) - 1.0
                cost[g] += np.sum(resid ** 2) / good.sum()
        scale[idx] = grid[np.argmin(cost)]
    return scale


def calibrate(real_dir: Path, exponents: np.ndarray | None = None, alpha: float = 1.0) -> dict:
    """Fit on MILES (+ Pickles in the red); returns the arrays written to the npz."""
    exponents = sm.DEFAULT_EXPONENTS if exponents is None else exponents
    miles = load_miles(real_dir)
    pickles = load_pickles(real_dir)
    red = fit_pickles_red(pickles, exponents, alpha * PICKLES_ALPHA_FACTOR) if pickles.name else None
    coeffs = fit_generator(miles, red, exponents, alpha)
    lo, hi = np.array([2700.0, -0.5, -2.5]), np.array([5300.0, 5.5, 0.8])
    feature_scale = fit_line_scales(sm.SpectrumModel(exponents, coeffs, lo, hi),
                                    load_lamost_dwarfs(real_dir))
    return {"exponents": exponents, "coeffs": coeffs, "feature_scale": feature_scale,
            "label_lo": lo, "label_hi": hi,
            "alpha": np.array(alpha), "n_miles": np.array(len(miles.name)),
            "n_pickles": np.array(len(pickles.name))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=Path("../shared/data/real"))
    parser.add_argument("--out", type=Path, default=sm.COEFFS_PATH)
    parser.add_argument("--alpha", type=float, default=1.0)
    args = parser.parse_args(argv)
    result = calibrate(args.real, alpha=args.alpha)
    np.savez_compressed(args.out, **result)
    print(f"wrote {args.out}: {result['coeffs'].shape} coefficients from {int(result['n_miles'])} "
          f"MILES + {int(result['n_pickles'])} Pickles spectra")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
