"""Literal-row harness for the clean layer: labelled stars and their clustering-grid spectra in, the
clean models (DBSCAN, suggestions, decisions, cln_kept, the queue) built in order."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from mgold.pipeline.config import Config
from mgold.pipeline.runner import Project, bind_config, build_models, ensure_meta, select_models

PROJECT = Project.load()
# the clean layer up to cln_kept and the queue, in build order
CLEAN_MODELS = [n for n in PROJECT.order if PROJECT.models[n].layer == "clean"
                and n in select_models(PROJECT.models, "+cln_kept +cln_inspection_queue")]


def clean_layer(con, labelled: pa.Table, flux: np.ndarray, ivar: np.ndarray, cfg: Config, loglam0: float,
                rv_kms: float = 10.0):
    """Create lbl_labelled_sample (``labelled``: obsid, source_id, class, teff_k, logg_dex, mh_dex, snr_i,
    label_source) and spc_cluster_grid (rows of ``flux`` / ``ivar`` in the same order, on a grid starting
    at ``loglam0``), then build CLEAN_MODELS; returns ``con``."""
    ensure_meta(con)
    bind_config(con, cfg)
    n, npix = flux.shape
    con.register("labelled_rows", labelled)
    con.execute("create or replace table lbl_labelled_sample as select * from labelled_rows")
    con.register("spectra_rows", pa.table({
        "obsid": labelled["obsid"], "n_good_pix": (ivar > 0).sum(axis=1), "n_pix": [npix] * n,
        "rv_kms": [rv_kms] * n, "loglam0": [loglam0] * n, "dloglam": [1e-4] * n,
        "flux": pa.FixedSizeListArray.from_arrays(pa.array(flux.astype(np.float32).ravel()), npix),
        "ivar": pa.FixedSizeListArray.from_arrays(pa.array(ivar.astype(np.float32).ravel()), npix)}))
    con.execute("create or replace table spc_cluster_grid as select * from spectra_rows")
    build_models(con, CLEAN_MODELS, cfg)
    return con
