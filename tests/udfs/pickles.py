"""Read a Pickles (1998) library spectrum: columns wavelength [AA], F_lambda normalised at 5556 AA, ..."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def read_pickles(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(wave_aa, flux)`` from a Pickles ``.dat`` file; fails with the file name on bad content."""
    # fixed-width columns (F7.1, F10.6): large fluxes run into the wavelength, so no whitespace split
    data = np.genfromtxt(path, delimiter=(7, 10), usecols=(0, 1))
    if data.ndim != 2 or data.shape[0] < 10 or not np.all(np.diff(data[:, 0]) > 0):
        raise ValueError(f"{path}: not a Pickles spectrum (need increasing wavelengths in column 1)")
    return data[:, 0], data[:, 1]
