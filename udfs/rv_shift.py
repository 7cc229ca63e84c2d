"""Shift a spectrum to its rest frame on its own grid (paper §2.3.1).

The shift is sub-pixel and flux-conserving: the same overlap resampling as
`resample.py` (one code path), with the input grid moved by the Doppler offset
of grid.py. ivar propagates, bad pixels spread to every output pixel they touch,
and output pixels past the shifted input edge get ivar 0 (never extrapolated).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .grid import doppler_dloglam
from .resample import resample_into


@njit(cache=True)
def rv_shift(flux, ivar, loglam0, dloglam, rv_kms):
    """Rest-frame ``(flux, ivar)`` float32 on the input grid for radial velocity ``rv_kms``."""
    n = flux.shape[0]
    out_flux = np.empty(n, dtype=np.float32)
    out_ivar = np.empty(n, dtype=np.float32)
    resample_into(flux, ivar, loglam0 - doppler_dloglam(rv_kms), dloglam, loglam0, dloglam, out_flux, out_ivar)
    return out_flux, out_ivar


@njit(cache=True, parallel=True)
def rv_shift_batch(flux_values, ivar_values, offsets, loglam0, dloglam, rv_kms):
    """Many spectra as flat values + offsets -> flat rest-frame (flux, ivar) float32 with the same offsets."""
    m = offsets.shape[0] - 1
    out_flux = np.empty(flux_values.shape[0], dtype=np.float32)
    out_ivar = np.empty(flux_values.shape[0], dtype=np.float32)
    for r in prange(m):
        s, e = offsets[r], offsets[r + 1]
        resample_into(flux_values[s:e], ivar_values[s:e], loglam0[r] - doppler_dloglam(rv_kms[r]), dloglam[r],
                      loglam0[r], dloglam[r], out_flux[s:e], out_ivar[s:e])
    return out_flux, out_ivar
