"""Flux-conserving resampling between log-linear grids (paper §2.4: "resampled to a set of fixed wavelengths").

Each output pixel is the overlap-weighted mean (weights = overlap length in
log lambda) of the input pixels it covers, so the integral of f d(log lambda) is
conserved. Variance propagates as var_out = sum(w^2 var) / sum(w)^2.

Masks: an input pixel is bad when ivar <= 0 or flux / ivar is not finite. An
output pixel gets ivar 0 when it touches a bad input pixel or is not fully
covered by the input grid (edges are masked, never extrapolated). Its flux is
then the mean of the good pixels it touches, or 0 when there are none, so
downstream distances stay finite.

`rest_frame_resample` applies the Doppler shift as a change of the input
loglam0 and resamples once: stages use it rather than rv_shift + resample.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .grid import doppler_dloglam

# Slack, in input pixels, for float rounding: an output pixel counts as fully covered
# within it (resampling onto the identical grid keeps its edge pixels), and overlaps
# no larger than it are edges that merely touch, not contributions.
_COVER_SLACK_PX = 1e-6


@njit(cache=True)
def _is_good(f, iv) -> bool:
    return iv > 0.0 and math.isfinite(f) and math.isfinite(iv)


@njit(cache=True)
def resample_into(flux, ivar, loglam0, dloglam, out_loglam0, out_dloglam, out_flux, out_ivar):
    """Resample ``flux, ivar`` (grid loglam0, dloglam) into the preallocated ``out_*`` arrays."""
    n_in = flux.shape[0]
    n_out = out_flux.shape[0]
    # output pixel edges in input-pixel coordinates u: input pixel j spans [j - 0.5, j + 0.5]
    a = (out_loglam0 - loglam0) / dloglam
    b = out_dloglam / dloglam
    for i in range(n_out):
        u_lo = a + b * (i - 0.5)
        u_hi = a + b * (i + 0.5)
        covered = n_in > 0 and u_lo >= -0.5 - _COVER_SLACK_PX and u_hi <= n_in - 0.5 + _COVER_SLACK_PX
        j_lo = max(int(math.floor(u_lo + 0.5)), 0)
        j_hi = min(int(math.floor(u_hi + 0.5)), n_in - 1)
        sw = 0.0
        swf = 0.0
        swwv = 0.0
        any_bad = False
        for j in range(j_lo, j_hi + 1):
            w = min(u_hi, j + 0.5) - max(u_lo, j - 0.5)
            if w <= _COVER_SLACK_PX:
                continue
            f = flux[j]
            iv = ivar[j]
            if _is_good(f, iv):
                sw += w
                swf += w * f
                swwv += w * w / iv
            else:
                any_bad = True
        if sw > 0.0:
            out_flux[i] = swf / sw
        else:
            out_flux[i] = 0.0
        if covered and not any_bad and sw > 0.0:
            out_ivar[i] = sw * sw / swwv
        else:
            out_ivar[i] = 0.0


@njit(cache=True)
def resample(flux, ivar, loglam0, dloglam, out_loglam0, out_dloglam, n_out):
    """Resample one spectrum onto the grid (out_loglam0, out_dloglam, n_out) -> (flux, ivar) float32."""
    out_flux = np.empty(n_out, dtype=np.float32)
    out_ivar = np.empty(n_out, dtype=np.float32)
    resample_into(flux, ivar, loglam0, dloglam, out_loglam0, out_dloglam, out_flux, out_ivar)
    return out_flux, out_ivar


@njit(cache=True)
def rest_frame_resample(flux, ivar, loglam0, dloglam, rv_kms, out_loglam0, out_dloglam, n_out):
    """Shift to the rest frame (grid.py convention) and resample onto the output grid, in one pass."""
    return resample(flux, ivar, loglam0 - doppler_dloglam(rv_kms), dloglam, out_loglam0, out_dloglam, n_out)


@njit(cache=True, parallel=True)
def rest_frame_resample_batch(flux_values, ivar_values, offsets, loglam0, dloglam, rv_kms,
                              out_loglam0, out_dloglam, n_out):
    """Many spectra (flat values + Arrow-style offsets) -> (m, n_out) float32 flux and ivar.

    Pass ``rv_kms`` of zeros for a plain resample. Rows run in parallel.
    """
    m = offsets.shape[0] - 1
    out_flux = np.empty((m, n_out), dtype=np.float32)
    out_ivar = np.empty((m, n_out), dtype=np.float32)
    for r in prange(m):
        s, e = offsets[r], offsets[r + 1]
        resample_into(flux_values[s:e], ivar_values[s:e], loglam0[r] - doppler_dloglam(rv_kms[r]), dloglam[r],
                      out_loglam0, out_dloglam, out_flux[r], out_ivar[r])
    return out_flux, out_ivar


@njit(cache=True, parallel=True)
def rest_frame_resample_ragged(flux_values, ivar_values, offsets, loglam0, dloglam, rv_kms,
                               out_loglam0, out_dloglam, out_offsets):
    """Like `rest_frame_resample_batch` but every row has its own output grid (flat output + ``out_offsets``).

    This is the SQL path, where the output grid arrives as per-row arguments.
    """
    m = offsets.shape[0] - 1
    out_flux = np.empty(out_offsets[m], dtype=np.float32)
    out_ivar = np.empty(out_offsets[m], dtype=np.float32)
    for r in prange(m):
        s, e = offsets[r], offsets[r + 1]
        os_, oe = out_offsets[r], out_offsets[r + 1]
        resample_into(flux_values[s:e], ivar_values[s:e], loglam0[r] - doppler_dloglam(rv_kms[r]), dloglam[r],
                      out_loglam0[r], out_dloglam[r], out_flux[os_:oe], out_ivar[os_:oe])
    return out_flux, out_ivar
