"""spc_cluster_grid / spc_red_grid on literal input rows (in-memory DuckDB)."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from mgold.pipeline.config import DEFAULT
from mgold.pipeline.runner import build_models
from mgold.pipeline.stages import spectra
from mgold.udfs.grid import C_KMS

LOGLAM0, DLOGLAM, NPIX = 3.5682, 1e-4, 3909


def _sed(loglam: np.ndarray, teff_k: float) -> np.ndarray:
    """A smooth continuum with sharp M-star-like absorption bands, shape set by teff."""
    lam = 10 ** loglam
    cont = (lam / 7000.0) ** (4000.0 / teff_k * 3)
    bands = 1 - 0.4 * np.exp(-0.5 * ((lam - 7100) / 15) ** 2) - 0.3 * np.exp(-0.5 * ((lam - 5200) / 8) ** 2)
    bands -= 0.5 * np.exp(-0.5 * ((lam - 8450) / 12) ** 2)
    return (cont * bands).astype(np.float32)


def _inputs(con, rv_kms: float, distortion: tuple[float, float, float], scale: float = 300.0):
    cl = spectra.grid(DEFAULT, "cluster")
    sed_loglam0, sed_n = 3.50, 5000
    sed_ll = sed_loglam0 + DLOGLAM * np.arange(sed_n)
    nodes = []
    for fam in ("bt_settl_like", "marcs_like"):
        for teff in (3400.0, 3500.0, 3600.0):
            nodes.append({"family": fam, "teff_k": teff, "logg_dex": 4.5 if fam == "bt_settl_like" else 1.0,
                          "mh_dex": 0.0, "loglam0": sed_loglam0, "dloglam": DLOGLAM,
                          "flux": _sed(sed_ll, teff).tolist()})
    con.execute("create schema if not exists landing")
    con.register("nodes", pa.Table.from_pylist(nodes))
    con.execute("create table landing.model_sed_grid as select * from nodes")
    # observed: rest-frame SED at 3500 K, Doppler shifted, times a 2nd-order distortion in cluster x
    obs_ll = LOGLAM0 + DLOGLAM * np.arange(NPIX)
    rest_ll = obs_ll - np.log10(1 + rv_kms / C_KMS)
    x = spectra.poly_x_on(cl, rest_ll)
    p = distortion[0] + distortion[1] * x + distortion[2] * x * x
    flux = scale * p * _sed(rest_ll, 3500.0)
    ivar = np.full(NPIX, 1e4, np.float32)
    ivar[1000:1003] = 0.0
    con.register("spec", pa.table({"obsid": [11], "loglam0": [LOGLAM0], "dloglam": [DLOGLAM],
                                   "flux": [flux.astype(np.float32).tolist()], "ivar": [ivar.tolist()],
                                   "pixmask": [[0] * NPIX]}))
    con.execute("create table landing.lamost_spectra as select obsid, loglam0, dloglam, "
                "flux::float[] flux, ivar::float[] ivar, pixmask::int[] pixmask from spec")
    con.execute("create table lbl_labelled_sample as select 11::bigint obsid, 7::bigint source_id, "
                "'dwarf' class, 3490.0 teff_k, 4.6 logg_dex, 0.02 mh_dex, 40.0 snr_i")
    con.execute(f"create table stg_lamost as select 11::bigint obsid, {rv_kms}::double rv_kms")
    return cl, scale * np.asarray(distortion)


def test_rest_frame_and_recalibration_recover_the_model_sed():
    con = duckdb.connect()
    cl, want_coeffs = _inputs(con, rv_kms=120.0, distortion=(1.0, 0.15, -0.1))
    build_models(con, ["spc_cluster_grid"], DEFAULT)
    row = con.execute("select flux, ivar, sedcal_coeffs, n_good_pix, n_pix, sed_teff_k, sed_family "
                      "from spc_cluster_grid").fetchone()
    flux, ivar, coeffs = np.array(row[0]), np.array(row[1]), np.array(row[2])
    assert row[4] == cl[2] == len(flux)
    assert row[5] == 3500.0 and row[6] == "bt_settl_like"      # nearest node in scaled labels
    model = _sed(cl[0] + DLOGLAM * np.arange(cl[2]), 3500.0)
    good = ivar > 0
    # flux now equals the model: the RV shift is undone (band at 7100 AA aligned) and P divided out
    assert np.max(np.abs(flux[good] / model[good] - 1)) < 0.01
    assert np.allclose(coeffs, want_coeffs, rtol=0.01, atol=0.01 * want_coeffs[0])
    # the masked input pixels stay masked; edges inside native coverage are good
    assert 0 < cl[2] - row[3] < 10


def test_red_grid_reuses_the_clustering_polynomial():
    con = duckdb.connect()
    _inputs(con, rv_kms=-80.0, distortion=(1.0, -0.2, 0.12))
    build_models(con, ["spc_cluster_grid", "spc_red_grid"], DEFAULT)
    red = spectra.grid(DEFAULT, "red")
    flux, ivar = (np.array(v) for v in con.execute("select flux, ivar from spc_red_grid").fetchone())
    model = _sed(red[0] + DLOGLAM * np.arange(red[2]), 3500.0)
    assert len(flux) == red[2]
    good = ivar > 0
    assert good.sum() > 0.99 * red[2]
    assert np.max(np.abs(flux[good] / model[good] - 1)) < 0.01


def test_missing_model_sed_grid_is_one_clear_error():
    con = duckdb.connect()
    _inputs(con, rv_kms=0.0, distortion=(1.0, 0.0, 0.0))
    con.execute("delete from landing.model_sed_grid")
    with pytest.raises(ValueError, match="model_sed_grid is empty"):
        build_models(con, ["spc_cluster_grid"], DEFAULT)
