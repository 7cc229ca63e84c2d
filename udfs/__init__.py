"""mgold UDFs: pure Numba kernels on numpy buffers, and their Arrow / DuckDB wrappers."""

import re

# the SQL functions `register.register_udfs` creates (kept here: naming them needs no Numba import)
UDF_NAMES = ("rv_shift", "resample", "rest_frame_resample", "sed_recalibrate")
# functions the pipeline registers over warehouse data (a library of templates), not kernels alone
PIPELINE_UDF_NAMES = ("laspm_fit",)
_CALL = re.compile(r"\b(" + "|".join(UDF_NAMES + PIPELINE_UDF_NAMES) + r")\s*\(", re.IGNORECASE)


def calls_udf(sql: str) -> bool:
    """True when ``sql`` calls one of the spectral UDFs (so a caller registers them only then)."""
    return _CALL.search(sql) is not None
