"""Register the spectral kernels as DuckDB Arrow UDFs, for ad-hoc SQL.

    select rv_shift(flux, ivar, loglam0, dloglam, rv_kms).flux from spectra
    select resample(flux, ivar, loglam0, dloglam, 3.59106, 1e-4, 3700) from spectra
    select rest_frame_resample(flux, ivar, loglam0, dloglam, rv_kms, 3.59106, 1e-4, 3700) from spectra
    select sed_recalibrate(flux, ivar, model_flux).coeffs from spectra_on_grid

DuckDB calls Python UDFs single-threaded, 2048 rows per call; heavy stages use
`mgold.udfs.arrow.rest_frame_resample_record_batch` and the ``*_batch`` kernels
directly instead. Null inputs give a null result.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
from duckdb.sqltypes import DOUBLE, FLOAT, INTEGER

from . import UDF_NAMES  # noqa: F401  (re-exported: the names of the functions created below)
from .arrow import resample_arrow, rv_shift_arrow, sed_recalibrate_arrow

FLOAT_LIST = duckdb.list_type(FLOAT)
SPECTRUM = duckdb.struct_type({"flux": FLOAT_LIST, "ivar": FLOAT_LIST})
RECALIBRATED = duckdb.struct_type({"flux": FLOAT_LIST, "ivar": FLOAT_LIST, "coeffs": duckdb.list_type(DOUBLE)})


def register_udfs(con: duckdb.DuckDBPyConnection, sedcal_order: int = 2, sedcal_clip_nsigma: float = 3.0,
                  sedcal_iterations: int = 5) -> None:
    """Create the spectral UDFs on ``con``; sed_recalibrate fits a polynomial of ``sedcal_order`` with
    ``sedcal_clip_nsigma`` rejection over ``sedcal_iterations`` (the pipeline passes its
    ``spectra.sedcal_*`` config values: kernels know nothing of the pipeline)."""

    def _resample(flux, ivar, loglam0, dloglam, out_loglam0, out_dloglam, n_out):
        zeros = pa.array(np.zeros(len(loglam0)))  # plain resample = rest-frame resample at rv 0
        return resample_arrow(flux, ivar, loglam0, dloglam, zeros, out_loglam0, out_dloglam, n_out)

    def _sed(flux, ivar, model_flux):
        return sed_recalibrate_arrow(flux, ivar, model_flux, sedcal_order, sedcal_clip_nsigma, sedcal_iterations)

    spec_in = [FLOAT_LIST, FLOAT_LIST, DOUBLE, DOUBLE]
    con.create_function("rv_shift", rv_shift_arrow, [*spec_in, DOUBLE], SPECTRUM, type="arrow")
    con.create_function("resample", _resample, [*spec_in, DOUBLE, DOUBLE, INTEGER], SPECTRUM, type="arrow")
    con.create_function("rest_frame_resample", resample_arrow, [*spec_in, DOUBLE, DOUBLE, DOUBLE, INTEGER],
                        SPECTRUM, type="arrow")
    con.create_function("sed_recalibrate", _sed, [FLOAT_LIST, FLOAT_LIST, FLOAT_LIST], RECALIBRATED, type="arrow")
