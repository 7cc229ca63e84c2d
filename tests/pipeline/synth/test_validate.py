"""`mgold synth validate`: the metric's pieces, and the realism targets on the real MILES stars."""

from __future__ import annotations

import numpy as np
import pytest

from mgold.pipeline.synth import validate as v


def test_poly_rms_ignores_a_quadratic_distortion():
    wave = np.linspace(6000.0, 7400.0, 500)
    star = 1.0 + 0.3 * np.sin(wave / 20.0)
    distorted = star * (1.0 + 0.2 * (wave - 6700.0) / 700.0 + 0.1 * ((wave - 6700.0) / 700.0) ** 2)
    assert v.poly_rms(distorted[None], star[None], wave)[0] < 1e-10


def test_poly_rms_measures_residual_structure():
    wave = np.linspace(6000.0, 7400.0, 2000)
    star = np.ones_like(wave)
    model = 1.0 + 0.05 * np.sin(wave / 5.0)
    assert v.poly_rms(model[None], star[None], wave)[0] == pytest.approx(0.05 / np.sqrt(2), rel=0.05)


def test_kfold_ids_are_balanced_and_seeded():
    folds = v.kfold_ids(117, 5)
    assert np.bincount(folds).tolist() == [24, 24, 23, 23, 23]
    assert np.array_equal(folds, v.kfold_ids(117, 5))


def test_nearest_neighbour_is_never_the_star_itself():
    labels = np.array([[3500.0, 4.8, 0.0], [3510.0, 4.8, 0.0], [4000.0, 1.5, -0.5], [3000.0, 5.0, 0.0]])
    nn = v.nearest_neighbour(labels, np.array([0, 1, 2]))
    assert nn.tolist() == [1, 0, 1]


@pytest.mark.real
@pytest.mark.slow
def test_generator_meets_realism_targets_on_miles(real_data):
    res = v.run_validation(real_data, k_folds=5)
    med, rms = res["median_rms"], res["rms"]
    assert res["n_stars"] >= 100
    # the figures are computed on one star set
    assert {len(x) for x in rms.values()} == {res["n_stars"]} == {len(res["star_ids"])}
    assert len(set(res["star_ids"])) == res["n_stars"]
    assert med["generator"] <= v.TARGET_VS_BLACKBODY * med["blackbody"]
    assert med["generator"] <= v.TARGET_VS_NEIGHBOUR * med["nearest_neighbour"]
    assert med["generator"] < med["quadratic_in_labels"]
    assert res["passed"]
