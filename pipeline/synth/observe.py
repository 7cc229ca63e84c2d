"""LAMOST visits and observed spectra: what the telescope and the 1D pipeline add to a star.

``make_visits`` draws every spectrum's header and truth (obsid, epoch, plate, fibre,
S/N, RV, injected defect; a failed RV fit reported as LAMOST's -9999 at
``synth.rv_failure_rate``). ``observe_batch`` turns intrinsic spectra from
``spectra_model.intrinsic_flux`` into observed ones: RV shift, CCM89 reddening,
telluric bands, a smooth flux-calibration distortion, LAMOST-like counts, the
blue/red join, noise with matching ivar, sky-line residuals, masked pixels, and the
injected cosmic rays / broken segments. Everything is vectorised over a batch.
"""

from __future__ import annotations

import numba
import numpy as np

from mgold.pipeline.config import SynthConfig
from mgold.pipeline.synth.spectra_model import DLOGLAM, LOGLAM0, N_PIX, intrinsic_flux, lamost_wave_aa
from mgold.pipeline.synth.stars import position_at, stream

C_KMS = 299792.458
DEFECTS = ("none", "swapped_labels", "wrong_object", "broken_segment", "cosmic_ray", "wrong_rv")
DATA_V = "LAMOST DR11 v1.0"
RV_FAILED = -9999.0                # what LAMOST writes for Z, Z_ERR and rv when its RV fit failed
# pixmask bits (LAMOST 2D pipeline): bad CCD, bad profile, no sky, bright sky, bad centre, no data
PIX_BADCCD, PIX_BADPROFILE, PIX_NOSKY, PIX_BRIGHTSKY, PIX_BADCENTER, PIX_NODATA = 1, 2, 4, 8, 16, 32
RV_PAD_PIX = 24                    # intrinsic spectra are made this much wider to allow the RV shift
JOIN_WAVE_AA = (5700.0, 5900.0)    # blue/red arm overlap (dichroic)
# SDSS-like band windows (Å, vacuum) over which the header S/N are medians
SNR_BANDS = {"u": (3700.0, 4000.0), "g": (4000.0, 5500.0), "r": (5500.0, 6900.0),
             "i": (6900.0, 8400.0), "z": (8400.0, 9100.0)}
# uncorrected telluric bands (Å, vacuum): O2 B, H2O, O2 A, H2O
TELLURIC_BANDS = ((6868.0, 6925.0, 0.6), (7165.0, 7340.0, 0.35), (7595.0, 7700.0, 1.0),
                  (8130.0, 8350.0, 0.45), (8950.0, 9100.0, 0.5))
# strong night-sky emission lines (Å, vacuum)
SKY_LINES_AA = (5578.9, 5891.6, 5897.6, 6302.0, 6365.5, 7278.4, 7318.2, 7342.9, 7371.5, 7794.1,
                7823.8, 7915.5, 7966.9, 7995.6, 8346.9, 8401.6, 8432.5, 8467.7, 8507.7, 8829.7,
                8888.2, 8922.2, 8945.5, 8990.9)


# ---------------------------------------------------------------------------------------------
# visits (headers + truth), one row per spectrum
# ---------------------------------------------------------------------------------------------
def make_visits(cfg: SynthConfig, stars: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One row per spectrum, sorted by (lmjd, plan, spid, fiberid); obsid increases along it."""
    rng = stream(cfg, "visits")
    star_id = np.repeat(stars["star_id"], stars["n_visits"])
    n = star_id.size
    lmjd = rng.integers(cfg.lmjd_min, cfg.lmjd_max + 1, n)
    ra, dec = stars["ra_deg"][star_id], stars["dec_deg"][star_id]
    field = (ra // 5).astype(np.int64) * 100 + ((dec + 90.0) // 5).astype(np.int64)
    group = lmjd * 10000 + field
    order = np.lexsort((rng.random(n), group))
    star_id, lmjd, field, group = star_id[order], lmjd[order], field[order], group[order]
    # slot within its plan -> unique (spid, fiberid) per plan, 250 fibres per spectrograph
    starts = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
    slot = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    v: dict[str, np.ndarray] = {"star_id": star_id, "lmjd": lmjd.astype(np.int32)}
    v["obsid"] = 100_000_000 + 3 * np.arange(n, dtype=np.int64) + rng.integers(0, 3, n)
    v["mjd"] = (lmjd - 1).astype(np.int32)
    v["spid"] = (slot // 250 + 1).astype(np.int32)
    v["fiberid"] = (slot % 250 + 1).astype(np.int32)
    v["planid"] = np.array([f"F{f // 100:02d}{f % 100:02d}M{m}" for f, m in zip(field, lmjd)])
    epoch = 2000.0 + (v["mjd"] - 51544.5) / 365.25
    ra_obs, dec_obs = position_at(stars, star_id, epoch)
    sig_deg = cfg.lamost_astrometry_sigma_arcsec / 3600.0
    v["dec_deg"] = dec_obs + rng.normal(0, sig_deg, n)
    v["ra_deg"] = (ra_obs + rng.normal(0, sig_deg, n) / np.cos(np.radians(dec_obs))) % 360.0
    g = stars["g_mag"][star_id]
    v["snr_i_target"] = np.clip(cfg.snr_i_median * np.exp(rng.normal(0, cfg.snr_i_lognormal_sigma, n))
                                * 10 ** (-0.2 * (g - 16.0)), 1.0, 900.0)

    # injected defects, mutually exclusive, per spectrum
    rates = np.array([cfg.defect_swapped_labels_rate, cfg.defect_wrong_object_rate,
                      cfg.defect_broken_segment_rate, cfg.defect_cosmic_ray_rate,
                      cfg.defect_wrong_rv_rate])
    if rates.sum() > 1:
        raise ValueError(f"synth defect rates sum to {rates.sum():.3f} > 1")
    code = np.searchsorted(np.cumsum(rates), rng.random(n), side="right") + 1
    code[code > len(rates)] = 0
    v["defect"] = np.array(DEFECTS)[code]
    n_stars = stars["star_id"].size
    other = (star_id + 1 + rng.integers(0, max(n_stars - 1, 1), n)) % max(n_stars, 1)
    v["labels_of_star_id"] = np.where(v["defect"] == "swapped_labels", other, star_id)
    v["flux_of_star_id"] = np.where(v["defect"] == "wrong_object", other, star_id)
    v["rv_true_kms"] = stars["rv_true_kms"][star_id] + rng.normal(0, 1.0, n)
    v["rv_err_kms"] = cfg.rv_error_kms * np.sqrt(30.0 / np.maximum(v["snr_i_target"], 3.0))
    v["rv_kms"] = v["rv_true_kms"] + rng.normal(0, 1, n) * v["rv_err_kms"]
    wrong = v["defect"] == "wrong_rv"
    v["rv_kms"] = np.where(wrong, v["rv_kms"] + rng.choice([-1.0, 1.0], n) * rng.uniform(100, 400, n),
                           v["rv_kms"])
    # the 1D pipeline's RV fit failed: reported rv and error are LAMOST's sentinel (the truth keeps
    # rv_true_kms); own stream, so the rate moves no other draw of the universe
    v["rv_failed"] = stream(cfg, "rv_failure").random(n) < cfg.rv_failure_rate
    v["rv_kms"] = np.where(v["rv_failed"], RV_FAILED, v["rv_kms"])
    v["rv_err_kms"] = np.where(v["rv_failed"], RV_FAILED, v["rv_err_kms"])
    # the 1D pipeline's subclass, from the spectrum it saw, with some luminosity confusion
    fo = v["flux_of_star_id"]
    sub = np.clip(np.round((3900.0 - stars["teff_k"][fo]) / 130.0 + rng.normal(0, 0.7, n)), 0, 9)
    lum = np.where(stars["class"][fo] == "giant", "g", "d")
    lum = np.where(rng.random(n) < 0.05, np.where(lum == "g", "d", "g"), lum)
    v["subclass"] = np.char.add(np.char.add(lum, "M"), sub.astype(np.int64).astype(str))
    v["designation"] = designations(stars["ra_deg"][star_id], stars["dec_deg"][star_id])
    return v


def designations(ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    """LAMOST designations 'LAMOST Jhhmmss.ss+ddmmss.s' (truncated, not rounded)."""
    out = []
    for ra, dec in zip(ra_deg, dec_deg):
        h = ra / 15.0
        hh, mm = int(h), int((h * 60) % 60)
        ss = int((h * 3600 % 60) * 100) / 100
        sign = "+" if dec >= 0 else "-"
        d = abs(dec)
        dd, dm = int(d), int((d * 60) % 60)
        ds = int((d * 3600 % 60) * 10) / 10
        out.append(f"LAMOST J{hh:02d}{mm:02d}{ss:05.2f}{sign}{dd:02d}{dm:02d}{ds:04.1f}")
    return np.array(out)


# ---------------------------------------------------------------------------------------------
# physics of the observation
# ---------------------------------------------------------------------------------------------
def ccm89_alam_over_av(wave_aa: np.ndarray, r_v: float = 3.1) -> np.ndarray:
    """Cardelli, Clayton & Mathis (1989) A_lambda / A_V for 0.3 <= 1/lambda[µm] <= 3.3."""
    x = 1e4 / np.asarray(wave_aa, dtype=np.float64)
    if np.any((x < 0.3) | (x > 3.3)):
        raise ValueError("CCM89 law used outside 3030-33000 Å")
    a, b = np.empty_like(x), np.empty_like(x)
    ir = x < 1.1
    a[ir], b[ir] = 0.574 * x[ir] ** 1.61, -0.527 * x[ir] ** 1.61
    y = x[~ir] - 1.82
    a[~ir] = np.polyval([0.32999, -0.77530, 0.01979, 0.72085, -0.02427, -0.50447, 0.17699, 1.0], y)
    b[~ir] = np.polyval([-2.09002, 5.30260, -0.62251, -5.38434, 1.07233, 2.28305, 1.41338, 0.0], y)
    return a + b / r_v


def _telluric_profile(wave: np.ndarray) -> np.ndarray:
    prof = np.zeros_like(wave)
    for lo, hi, depth in TELLURIC_BANDS:
        edge = 8.0  # Å, soft band edges at R~1800
        prof += depth / ((1 + np.exp((lo - wave) / edge)) * (1 + np.exp((wave - hi) / edge)))
    return prof


def _sky_profile(wave: np.ndarray) -> np.ndarray:
    prof = np.zeros_like(wave)
    for line in SKY_LINES_AA:
        sig = line / 1800.0 / 2.3548
        prof += np.exp(-0.5 * ((wave - line) / sig) ** 2)
    return prof


class Observer:
    """Fixed per-grid arrays (wavelengths, extinction curve, band windows) for one config."""

    def __init__(self, cfg: SynthConfig):
        self.cfg = cfg
        self.wave = lamost_wave_aa()
        self.wave_ext = 10.0 ** (LOGLAM0 + DLOGLAM * (np.arange(N_PIX + 2 * RV_PAD_PIX) - RV_PAD_PIX))
        self.alam = ccm89_alam_over_av(self.wave).astype(np.float32)
        self.telluric = _telluric_profile(self.wave).astype(np.float32)
        self.sky = _sky_profile(self.wave).astype(np.float32)
        self.sky_pix = self.sky > 0.3
        x = np.linspace(-1.0, 1.0, N_PIX)
        order = max(cfg.flux_calib_order, 1)
        self.legendre = np.stack([np.polynomial.legendre.Legendre.basis(k)(x)
                                  for k in range(1, order + 1)]).astype(np.float32)
        mid = 0.5 * sum(JOIN_WAVE_AA)
        self.red_arm = (0.5 * (1 + np.tanh((self.wave - mid) / 40.0))).astype(np.float32)
        self.join = ((self.wave > JOIN_WAVE_AA[0]) & (self.wave < JOIN_WAVE_AA[1]))
        self.bands = {b: np.flatnonzero((self.wave >= lo) & (self.wave < hi)) for b, (lo, hi) in SNR_BANDS.items()}
        self.band_ranges = np.array([[p[0], p[-1] + 1] for p in self.bands.values()], dtype=np.int64)
        self.i_range = self.band_ranges[list(SNR_BANDS).index("i")].copy()
        jp = np.flatnonzero(self.join)
        self.join_range = np.array([jp[0], jp[-1] + 1], dtype=np.int64)
        # LAMOST-like relative throughput: poor in the blue, best 6000-8000 Å, falling past 8500 Å
        w = self.wave
        thr = 0.08 + 0.92 / (1 + np.exp(-(w - 4700.0) / 350.0)) * (1 - 0.5 / (1 + np.exp(-(w - 8800.0) / 200.0)))
        self.throughput = thr.astype(np.float32)
        self.inv_throughput_sq = (1.0 / thr ** 2).astype(np.float32)

    def observe(self, stars: dict[str, np.ndarray], v: dict[str, np.ndarray], idx: np.ndarray,
                rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Observed flux / ivar / pixmask and header S/N of the visits ``idx``."""
        cfg, n = self.cfg, idx.size
        sid, fo = v["star_id"][idx], v["flux_of_star_id"][idx]
        rest = intrinsic_flux(stars["teff_k"][fo], stars["logg_dex"][fo], stars["mh_dex"][fo], self.wave_ext)
        av = stars["av_mag"][sid].astype(np.float32)
        depth = (cfg.telluric_depth * rng.uniform(0.5, 1.5, n)).astype(np.float32)
        cal = rng.normal(0, cfg.flux_calib_distortion / np.sqrt(len(self.legendre)),
                         (n, len(self.legendre))).astype(np.float32)
        join_ln = np.log1p(rng.normal(0, cfg.join_mismatch, n)).astype(np.float32)
        counts = (cfg.flux_counts_at_g15 * 10 ** (-0.4 * (stars["g_mag"][sid] - 15.0))).astype(np.float32)
        sky_amp = (cfg.sky_residual_sigma * rng.normal(0, 1, n)).astype(np.float32)
        z = rng.standard_normal((n, N_PIX), dtype=np.float32)
        n_lo, n_hi = rng.integers(0, 12, n), rng.integers(0, 20, n)      # missing ends (NODATA)
        dpix = np.log10(1.0 + v["rv_true_kms"][idx] / C_KMS) / DLOGLAM
        obs = np.empty((n, N_PIX), np.float32)
        ivar = np.empty((n, N_PIX), np.float32)
        sigma = np.empty((n, N_PIX), np.float32)
        pixmask = np.zeros((n, N_PIX), np.int32)
        snr_arr = np.zeros((n, len(self.band_ranges)), np.float64)
        _observe_kernel(rest, dpix, cal, self.legendre, join_ln, self.red_arm, av, self.alam, depth,
                        self.telluric, counts, self.throughput, self.inv_throughput_sq,
                        v["snr_i_target"][idx].astype(np.float64), self.i_range, self.join_range,
                        self.sky, sky_amp, self.sky_pix, z, n_lo, n_hi, self.band_ranges,
                        obs, ivar, sigma, pixmask, snr_arr)
        snr = {b: np.round(snr_arr[:, j], 2) for j, b in enumerate(SNR_BANDS)}
        # bad CCD pixels and missing ends
        n_bad = rng.poisson(cfg.bad_pixel_rate * N_PIX, n)
        rows = np.repeat(np.arange(n), n_bad)
        cols = rng.integers(0, N_PIX, rows.size)
        pixmask[rows, cols] |= PIX_BADCCD
        ivar[rows, cols] = 0.0
        self._inject(obs, sigma, v["defect"][idx], rng)
        return {"flux": obs, "ivar": ivar.astype(np.float32), "pixmask": pixmask, "snr": snr}

    @staticmethod
    def _inject(obs: np.ndarray, sigma: np.ndarray, defect: np.ndarray, rng) -> None:
        """Broken segments (flux collapses, ivar still claims good) and cosmic-ray spikes."""
        for r in np.flatnonzero(defect == "broken_segment"):
            length = int(rng.integers(100, 500))
            start = int(rng.integers(0, N_PIX - length))
            obs[r, start:start + length] *= rng.uniform(0.0, 0.2)
        for r in np.flatnonzero(defect == "cosmic_ray"):
            cols = rng.integers(5, N_PIX - 5, int(rng.integers(1, 6)))
            obs[r, cols] += rng.uniform(20, 100, cols.size) * sigma[r, cols]


@numba.njit(parallel=True, cache=True, fastmath=True)   # inputs are generated, always finite
def _observe_kernel(rest, dpix, cal, legendre, join_ln, red_arm, av, alam, depth, telluric, counts,
                    throughput, inv_thr_sq, snr_target, i_range, join_range, sky, sky_amp, sky_pix,
                    z, n_lo, n_hi, band_ranges, out_flux, out_ivar, out_sigma, out_mask, out_snr):
    """Fused per-pixel observation of a batch (see ``Observer.observe``); one pass per row.

    RV shift by linear interpolation, calibration distortion x reddening x red-arm mismatch,
    telluric absorption, counts; photon + floor variance scaled so the i-band median S/N hits
    ``snr_target``; noise ``z`` and sky-line residuals; header S/N per band from the model;
    the first ``n_lo`` / last ``n_hi`` pixels of a row carry no data.
    """
    n, n_pix = out_flux.shape
    n_leg = legendre.shape[0]
    ln10_04 = np.float32(0.4 * np.log(10.0))
    for r in numba.prange(n):
        f = np.empty(n_pix, np.float32)
        var = np.empty(n_pix, np.float32)
        # a constant fractional shift per row: rest pixel j + base (+ w toward the next one)
        shift = RV_PAD_PIX - dpix[r]
        base = int(np.floor(shift))
        w = np.float32(shift - base)
        last = rest.shape[1] - 2
        for j in range(n_pix):
            i0 = min(max(j + base, 0), last)
            x = rest[r, i0] + w * (rest[r, i0 + 1] - rest[r, i0])
            ln_c = join_ln[r] * red_arm[j] - ln10_04 * av[r] * alam[j]
            for k in range(n_leg):
                ln_c += cal[r, k] * legendre[k, j]
            f[j] = x * np.exp(ln_c) * (np.float32(1.0) - depth[r] * telluric[j]) * counts[r]
        photons_i = f[i_range[0]:i_range[1]] * throughput[i_range[0]:i_range[1]]
        floor = np.float32(0.2) * np.median(photons_i)
        for j in range(n_pix):
            var[j] = (max(f[j] * throughput[j], np.float32(0.0)) + floor) * inv_thr_sq[j]
            out_sigma[r, j] = f[j] / np.sqrt(var[j])       # model S/N, reused below
        k = (np.median(out_sigma[r, i_range[0]:i_range[1]]) / snr_target[r]) ** 2
        for b in range(band_ranges.shape[0]):
            out_snr[r, b] = max(np.median(out_sigma[r, band_ranges[b, 0]:band_ranges[b, 1]]), 0.0) / np.sqrt(k)
        for j in range(n_pix):
            v = var[j] * np.float32(k)
            if join_range[0] <= j < join_range[1]:
                v *= np.float32(2.0)               # dichroic overlap is noisier
            sig = np.sqrt(v)
            out_sigma[r, j] = sig
            out_flux[r, j] = f[j] + sig * (z[r, j] + sky_amp[r] * sky[j])
            iv = np.float32(1.0) / v
            if sky_pix[j]:
                iv *= np.float32(0.25)
                out_mask[r, j] |= PIX_BRIGHTSKY
            if j < n_lo[r] or j >= n_pix - n_hi[r]:
                out_flux[r, j] = 0.0
                iv = np.float32(0.0)
                out_mask[r, j] |= PIX_NODATA
            out_ivar[r, j] = iv
