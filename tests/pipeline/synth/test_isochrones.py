"""PARSEC-derived relations: directions of the physics, and the committed coefficients' provenance."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mgold.pipeline.synth import isochrones as iso


def test_giant_logg_rises_with_teff_and_metallicity():
    teff = np.array([3300.0, 3700.0, 4100.0])
    solar = iso.relation("logg", "giant", teff, 0.0)
    assert np.all(np.diff(solar) > 0.2)
    assert np.all(iso.relation("logg", "giant", teff, 0.3) > solar)


def test_dwarfs_are_faint_and_redden_as_they_cool():
    teff = np.array([3100.0, 3500.0, 4000.0])
    abs_g = iso.relation("abs_g", "dwarf", teff, 0.0)
    bp_rp = iso.relation("bp_rp", "dwarf", teff, 0.0)
    assert np.all(np.diff(abs_g) < 0) and np.all(np.diff(bp_rp) < 0)
    assert 7.0 < abs_g.min() and abs_g.max() < 13.0          # paper §2.1.1 box: 7 < M_G < 12-ish
    assert np.all(iso.relation("logg", "dwarf", teff, 0.0) > 4.5)


def test_giants_are_far_brighter_than_dwarfs():
    teff = np.linspace(3300, 4100, 5)
    assert np.all(iso.relation("abs_g", "giant", teff, 0.0) < iso.relation("abs_g", "dwarf", teff, 0.0) - 6)


@pytest.mark.real
def test_committed_coefficients_are_derived_from_the_parsec_tables(real_data):
    fresh = iso.derive_coeffs(real_data / "isochrones")
    committed = json.loads(iso.COEFFS_PATH.read_text())
    assert fresh["relations"] == committed["relations"]


def test_missing_tables_give_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no PARSEC"):
        iso.derive_coeffs(tmp_path)
