"""udfs/register.py: the SQL path end to end on an in-memory DuckDB with literal spectra."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest
from naive import assert_close, naive_resample, naive_rv_shift, naive_sed_recalibrate

from mgold.pipeline.config import DEFAULT
from mgold.udfs.register import UDF_NAMES, register_udfs


@pytest.fixture()
def con():
    c = duckdb.connect()
    register_udfs(c)
    c.execute("""
        create table spectra as select * from (values
            (1, 3.6::double, 1e-4::double, 42.0::double, [1.0, 1.1, 0.9, 1.2, 1.0, 0.8, 1.0]::float[], [4, 4, 4, 0, 4, 4, 4]::float[]),
            (2, 3.6002, 1e-4, -20.0, [2.0, 2.1, 2.2]::float[], [1, 1, 1]::float[]),
            (3, 3.6, 1e-4, null, [1.0]::float[], [1.0]::float[])
        ) t(obsid, loglam0, dloglam, rv_kms, flux, ivar)
    """)
    return c


def test_every_udf_is_registered(con):
    names = {r[0] for r in con.sql("select function_name from duckdb_functions()").fetchall()}
    assert set(UDF_NAMES) <= names


def test_rv_shift_from_sql_matches_naive_and_null_rv_gives_null(con):
    rows = con.sql("""
        select obsid, flux, ivar, loglam0, rv_kms, rv_shift(flux, ivar, loglam0, dloglam, rv_kms) as s
        from spectra order by obsid
    """).fetchall()
    for obsid, flux, ivar, l0, rv, s in rows:
        if rv is None:
            assert s is None
            continue
        want = naive_rv_shift(np.float32(flux), np.float32(ivar), l0, 1e-4, rv)
        assert_close(s["flux"], want[0], f"obsid {obsid}")
        assert_close(s["ivar"], want[1], f"obsid {obsid}")


def test_resample_and_rest_frame_resample_from_sql(con):
    rows = con.sql("""
        select flux, ivar, loglam0,
               resample(flux, ivar, loglam0, dloglam, 3.6001, 2e-4, 3) as r,
               rest_frame_resample(flux, ivar, loglam0, dloglam, 0.0, 3.6001, 2e-4, 3) as rr
        from spectra where obsid = 1
    """).fetchall()
    flux, ivar, l0, r, rr = rows[0]
    want = naive_resample(np.float32(flux), np.float32(ivar), l0, 1e-4, 3.6001, 2e-4, 3)
    assert_close(r["flux"], want[0])
    assert_close(r["ivar"], want[1])
    assert r == rr


def test_sed_recalibrate_from_sql_uses_config_order(con):
    x = np.linspace(-1, 1, 40)
    model = (1 + 0.3 * np.sin(7 * x)).astype(np.float32)
    flux = (model * (0.9 + 0.1 * x - 0.05 * x**2)).astype(np.float32)
    (s,) = con.execute("select sed_recalibrate(?::float[], ?::float[], ?::float[])",
                       [flux.tolist(), [1.0] * 40, model.tolist()]).fetchone()
    assert len(s["coeffs"]) == DEFAULT.spectra.sedcal_poly_order + 1
    want = naive_sed_recalibrate(flux, np.ones(40, np.float32), model)
    assert_close(s["coeffs"], want[2])
    assert_close(s["flux"], want[0])
