"""Log-linear wavelength grids and the Doppler convention shared by every spectral kernel.

A grid is ``(loglam0, dloglam, n)``: pixel i is centred at log10(lambda / AA) =
loglam0 + i * dloglam (vacuum), and covers half a step either side.

Doppler convention: lambda_rest = lambda_obs / (1 + v / c), the classical
(non-relativistic) form, because the LAMOST 1D pipeline reports RV as c*z.
The relativistic form differs by ~v^2/(2c^2) (< 0.02 km/s for |v| < 100 km/s),
far below the ~5 km/s RV precision of paper §2.3.1.
"""

from __future__ import annotations

import math

from numba import njit

C_KMS = 299792.458


@njit(cache=True)
def doppler_dloglam(rv_kms: float) -> float:
    """log10(lambda_obs) - log10(lambda_rest) for a radial velocity ``rv_kms``."""
    return math.log10(1.0 + rv_kms / C_KMS)


def common_grid(wave_min_aa: float, wave_max_aa: float, dloglam: float) -> tuple[float, int]:
    """``(loglam0, n)`` of the grid from ``wave_min_aa`` to ``wave_max_aa`` in steps of ``dloglam``.

    The first pixel is centred on ``wave_min_aa``; the last centre is the largest
    one not beyond ``wave_max_aa`` (paper §2.4 clustering grid 3900-8800 AA,
    §2.5 NN / LASPM grid 6000-8800 AA).
    """
    if not (0 < wave_min_aa < wave_max_aa) or dloglam <= 0:
        raise ValueError(f"common_grid needs 0 < wave_min_aa < wave_max_aa and dloglam > 0, "
                         f"got {wave_min_aa}, {wave_max_aa}, {dloglam}")
    loglam0 = math.log10(wave_min_aa)
    span = math.log10(wave_max_aa) - loglam0
    n = int(math.floor(span / dloglam + 1e-9)) + 1
    return loglam0, n
