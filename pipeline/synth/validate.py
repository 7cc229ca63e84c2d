"""``mgold synth validate``: how realistic are the generator's spectra?  (issue 3)

For every MILES star with Teff < 4200 K and valid labels: RMS of (spectrum / star) over
6000-7400 Å (vacuum) after both are at R = 1800 on the model grid and the best 2nd-order
polynomial in wavelength has been divided out (flux calibration and reddening are not the
generator's job).  The generator is scored k-fold: the correction is refitted in-process without
the fold's stars (``calibrate.fit_correction``), so no star is scored by a model that saw it.
Median over stars, beside two baselines on the same stars:

* blackbody at the star's Teff;
* the nearest-in-label *other* MILES star (any Teff <= 5300 K), distance
  sqrt((dTeff / 50 K)^2 + (dlog g / 0.1)^2 + (d[M/H] / 0.1)^2): the paper's label bin sizes
  (§2.4.1, ``clean`` config), i.e. one bin in any label counts the same;

and, for scale, a plain quadratic-in-labels ridge fit to the MILES log fluxes (same folds).
Targets: generator <= 0.5 x blackbody and <= 1.2 x nearest neighbour.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mgold.pipeline.synth import calibrate as cal
from mgold.pipeline.synth import spectra_model as sm

WINDOW_AA = (6000.0, 7400.0)
MAX_TEFF_K = 4200.0
NN_SCALE = (50.0, 0.1, 0.1)      # Teff K, log g dex, [M/H] dex (paper's bin sizes)
TARGET_VS_BLACKBODY = 0.5
TARGET_VS_NEIGHBOUR = 1.2


def poly_rms(model_flux: np.ndarray, star_flux: np.ndarray, wave_aa: np.ndarray,
             order: int = 2) -> np.ndarray:
    """(n,) RMS of model/star - 1 after dividing out the best polynomial of ``order`` (per row)."""
    ratio = np.asarray(model_flux, float) / np.asarray(star_flux, float)
    x = (wave_aa - wave_aa.mean()) / (np.ptp(wave_aa) / 2.0)
    vander = np.vander(x, order + 1)
    coef, *_ = np.linalg.lstsq(vander, ratio.T, rcond=None)
    return np.sqrt(np.mean((ratio / (vander @ coef).T - 1.0) ** 2, axis=1))


def kfold_ids(n: int, k_folds: int, seed: int = 0) -> np.ndarray:
    """Fold index per item: a seeded permutation dealt round-robin."""
    folds = np.empty(n, dtype=np.int64)
    folds[np.random.default_rng(seed).permutation(n)] = np.arange(n) % k_folds
    return folds


def nearest_neighbour(labels: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Index (into ``labels``) of each target's nearest *other* star in scaled label space."""
    scaled = labels / np.asarray(NN_SCALE)
    d2 = ((scaled[targets][:, None, :] - scaled[None, :, :]) ** 2).sum(-1)
    d2[np.arange(targets.size), targets] = np.inf
    return np.argmin(d2, axis=1)


def _quadratic_fit(train: cal.TrainingSet, test_labels: np.ndarray, pix: np.ndarray) -> np.ndarray:
    """ln flux of a plain quadratic-in-labels ridge fit (per-star scale removed), on ``pix``."""
    exps = sm.monomial_exponents(2)
    phi = sm.design_matrix(sm.scaled_labels(*train.labels.T), exps)
    y = train.ln_flux[:, pix].astype(float)
    w = train.weight[:, pix].astype(float)
    y = y - (w * y).sum(1, keepdims=True) / w.sum(1, keepdims=True)
    alpha = np.full(exps.shape[0], 1e-3)
    coeffs = cal.ridge_per_pixel(phi, y, w, alpha)
    return sm.design_matrix(sm.scaled_labels(*test_labels.T), exps) @ coeffs


def run_validation(real_dir: Path, k_folds: int = 5) -> dict:
    """Compute the realism figures; see the module docstring.  Returns medians, per-star RMS, ids."""
    miles = cal.load_miles(Path(real_dir))
    wave = sm.model_wave_aa()
    pix = np.flatnonzero((wave >= WINDOW_AA[0]) & (wave <= WINDOW_AA[1]))
    covered = (miles.ln_flux[:, pix] != 0).all(1)  # weight tapers near the red end; data do not
    scored = np.flatnonzero((miles.labels[:, 0] < MAX_TEFF_K) & covered)
    star_flux = np.exp(miles.ln_flux[scored][:, pix].astype(float))
    template = cal.template_ln_flux(miles.labels)
    # the Pickles (red) part of the fit never sees MILES stars: fit it once
    red = cal.fit_pickles_red(cal.load_pickles(Path(real_dir)), sm.DEFAULT_EXPONENTS,
                              cal.PICKLES_ALPHA_FACTOR)
    folds = kfold_ids(scored.size, k_folds)

    gen_flux = np.empty_like(star_flux)
    quad_ln = np.empty_like(star_flux)
    for k in range(k_folds):
        test = scored[folds == k]
        keep = np.setdiff1d(np.arange(len(miles.name)), test)
        coeffs = cal.fit_generator(miles.subset(keep), red, sm.DEFAULT_EXPONENTS,
                                   template=template[keep])
        model = sm.SpectrumModel(sm.DEFAULT_EXPONENTS, coeffs)
        lab = miles.labels[test]
        gen_flux[folds == k] = model.flux(lab[:, 0], lab[:, 1], lab[:, 2], wave[pix])
        quad_ln[folds == k] = _quadratic_fit(miles.subset(keep), lab, pix)

    bb_flux = np.exp(sm.ln_blackbody(miles.labels[scored, 0], wave[pix]))
    nn = nearest_neighbour(miles.labels, scored)
    nn_flux = np.exp(miles.ln_flux[nn][:, pix].astype(float))
    rms = {
        "generator": poly_rms(gen_flux, star_flux, wave[pix]),
        "blackbody": poly_rms(bb_flux, star_flux, wave[pix]),
        "nearest_neighbour": poly_rms(nn_flux, star_flux, wave[pix]),
        "quadratic_in_labels": poly_rms(np.exp(quad_ln), star_flux, wave[pix]),
    }
    median = {k: float(np.median(v)) for k, v in rms.items()}
    passed = (median["generator"] <= TARGET_VS_BLACKBODY * median["blackbody"]
              and median["generator"] <= TARGET_VS_NEIGHBOUR * median["nearest_neighbour"])
    return {"n_stars": int(scored.size), "star_ids": [miles.name[i] for i in scored],
            "k_folds": k_folds, "median_rms": median, "rms": rms, "passed": bool(passed)}


def main(real_dir: Path, k_folds: int = 5) -> int:
    """Print the realism figures and PASS/FAIL; 0 on pass, 1 on fail, 2 when data are missing."""
    if not (Path(real_dir) / cal.MILES_DIR).is_dir():
        print(f"MILES library not found under {real_dir}/{cal.MILES_DIR}")
        return 2
    res = run_validation(Path(real_dir), k_folds)
    med = res["median_rms"]
    print(f"MILES stars with Teff < {MAX_TEFF_K:.0f} K: {res['n_stars']}  "
          f"({WINDOW_AA[0]:.0f}-{WINDOW_AA[1]:.0f} Å, R=1800, quadratic divided out, "
          f"{res['k_folds']}-fold)")
    print(f"  generator (k-fold)         median RMS {100 * med['generator']:.2f}%")
    print(f"  blackbody at Teff          median RMS {100 * med['blackbody']:.2f}%")
    print(f"  nearest-in-label MILES     median RMS {100 * med['nearest_neighbour']:.2f}%")
    print(f"  (quadratic-in-labels fit   median RMS {100 * med['quadratic_in_labels']:.2f}%)")
    print(f"  targets: <= {TARGET_VS_BLACKBODY} x blackbody = "
          f"{100 * TARGET_VS_BLACKBODY * med['blackbody']:.2f}%, <= {TARGET_VS_NEIGHBOUR} x "
          f"neighbour = {100 * TARGET_VS_NEIGHBOUR * med['nearest_neighbour']:.2f}%")
    print("PASS" if res["passed"] else "FAIL")
    return 0 if res["passed"] else 1
