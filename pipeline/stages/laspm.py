"""LASPM (paper §4): every M-type spectrum fitted against a template library by chi^2.

Two Python models:

``lsp_library``  the libraries mgold derives, on the red grid 6000-8800 AA: 'golden' (the
                 golden sample, ``gold_sample``: its spectra from ``spc_red_grid``, SED-recalibrated, rest
                 frame, with their transferred labels) and 'model_grid' (the synthetic model
                 SEDs, the old LASPM's BT-Settl-like / MARCS-like predecessor library).
                 Empirical libraries (MILES, ...) are ingested instead
                 (``mgold ingest library``, ``landing.library_spectra``), with the same columns.
``lsp_results``  partitioned by ``library``: one result set per library named in
                 ``laspm.libraries``; each is rebuilt only when its own templates, the spectra
                 or the code / config change (``mgold laspm run --library L`` adds one).

The engine is ``mgold.udfs.laspm`` (fused float32 GEMMs + one Numba pass, candidates
recomputed in float64): each spectrum is moved to the rest frame by its LAMOST RV (header
``Z``; a missing one, LAMOST's -9999 nulled at ingest, is fitted by chi^2 over +-500 km/s
against the best templates and flagged) and fitted with a degree-``laspm.poly_degree``
multiplicative Legendre polynomial; its labels are the weighted mean of the k best
templates (§4.1's interpolation), with their spread as the error.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from mgold.udfs.arrow import list_to_numpy
from mgold.udfs.laspm import fit_observed, pixel_mask_outside, prepare_library

from ..ingest.library import library_columns, model_grid_library
from ..model import ModelError
from ..pymodel import python_model
from .spectra import SEDS_SQL, grid

# the libraries this model derives; any other name is read from landing.library_spectra
DERIVED = ("golden", "model_grid")
LABELS = ("teff_k", "logg_dex", "mh_dex")

GOLDEN_SQL = """
select 'golden' as library, g.obsid as template_id, g.designation as name, g.teff_k, g.logg_dex, g.mh_dex,
       g.class, g.snr_i as snr, s.loglam0, s.dloglam, s.n_pix, s.n_good_pix, s.flux, s.ivar
from gold_sample g
join spc_red_grid s using (obsid)
qualify getvariable('laspm.golden_subset') = 'all'
     or row_number() over (partition by g.bin_id order by g.snr_i desc, g.obsid) = 1
order by g.obsid
"""

_LIBRARY_PARAMS = ("spectra.red_wave_min_aa", "spectra.red_wave_max_aa", "spectra.dloglam",
                   "library.assumed_snr", "labels.supplement_dwarf_logg_min_dex")


@python_model(
    name="lsp_library", layer="laspm", columns=library_columns,
    inputs={"golden": GOLDEN_SQL, "seds": SEDS_SQL}, params=_LIBRARY_PARAMS,
    description="The template libraries mgold derives for LASPM on the red grid 6000-8800 AA (paper §4): "
                "'golden' (the cleaned sample's recalibrated rest-frame spectra with their labels) and "
                "'model_grid' (the model SEDs of the old LASPM). Ingested libraries live in "
                "landing.library_spectra with the same columns.",
    grain="one row per (library, template_id)",
    tests="unique(library, template_id); not_null(library, template_id, teff_k, logg_dex, mh_dex, flux, ivar)",
)
def build_library(ctx):
    yield ctx.table("golden")
    yield model_grid_library(ctx.table("seds"), ctx.cfg)


# no ORDER BY: sorting a release's spectra (~30 GB of arrays) would cost memory and time, and every
# spectrum's fit is independent of the others, so the table's content does not depend on the order
SPECTRA_SQL = """
select s.obsid, h.snr_i, h.rv_kms, s.loglam0, s.dloglam, s.flux, s.ivar
from landing.lamost_spectra s
join stg_lamost h using (obsid)
where h.is_m_type
"""
TEMPLATE_COLUMNS = "library, template_id, teff_k, logg_dex, mh_dex, flux, ivar"
DERIVED_SQL = f"select {TEMPLATE_COLUMNS} from lsp_library where library = getvariable('partition') order by template_id"
EMPIRICAL_SQL = (f"select {TEMPLATE_COLUMNS} from landing.library_spectra where library = getvariable('partition') "
                 "order by template_id")

RESULT_COLUMNS = {
    "library": ("varchar", "the template library (result set) this row was fitted against"),
    "obsid": ("bigint", "LAMOST spectrum id"),
    "teff_k": ("double", "effective temperature (K): weighted mean of the k best templates' labels"),
    "logg_dex": ("double", "surface gravity log g (dex)"),
    "mh_dex": ("double", "metallicity [M/H] (dex)"),
    "teff_err_k": ("double", "weighted spread of the k best templates' Teff (K)"),
    "logg_err_dex": ("double", "weighted spread of their log g (dex)"),
    "mh_err_dex": ("double", "weighted spread of their [M/H] (dex)"),
    "chi2_min": ("double", "chi^2 of the best template (float64)"),
    "chi2_nu": ("double", "reduced chi^2 of the best template"),
    "best_template_ids": ("bigint[]", "template_id of the k best templates, best first"),
    "rv_used_kms": ("double", "radial velocity the spectrum was shifted by (km/s)"),
    "rv_source": ("varchar", "'header' (the LAMOST pipeline's) or 'fitted' (missing in the header)"),
    "rv_err_kms": ("double", "error of a fitted RV (km/s); NULL for header RVs"),
    "n_good_pix": ("bigint", "good pixels of the spectrum on the red grid"),
    "snr_i": ("double", "LAMOST i-band S/N"),
    "flags": ("integer", "bits: 1 edge of library, 2 poor fit, 4 few pixels, 8 RV missing, 16 RV fit poor, "
                         "32 no fit"),
    "run_id": ("varchar", "the run that fitted it"),
}
FIT_PARAMS = tuple(f"laspm.{k}" for k in (
    "poly_degree", "mask_windows_aa", "k_best", "n_candidates", "weighting", "temperature", "edge_weight_min",
    "poor_fit_chi2_nu", "min_good_pix_frac", "min_overlap_frac", "rv_halfwidth_kms", "rv_step_kms",
    "rv_n_templates", "rv_min_depth_dchi2", "batch_spectra")) + ("spectra.red_wave_min_aa",
                                                                 "spectra.red_wave_max_aa", "spectra.dloglam")


def templates_token(ctx) -> str:
    """The partition's library content: a changed golden sample refits only the 'golden' results."""
    rel = "lsp_library" if ctx.partition in DERIVED else "landing.library_spectra"
    return str(ctx.scalar(f"select count(*) || ':' || coalesce(bit_xor(hash(template_id, teff_k, logg_dex, "
                          f"mh_dex, flux, ivar)), 0) from {rel} where library = ?", ctx.partition))


def library_arrays(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(template_id, flux, ivar, labels) of the templates with finite labels (the others cannot label
    anything; an empty library is an error naming it)."""
    if table.num_rows == 0:
        raise ModelError(f"library {name!r} has no templates: ingest it (mgold ingest library ...) or build "
                         "the golden sample first")
    labels = np.column_stack([table[c].to_numpy(zero_copy_only=False).astype(float) for c in LABELS])
    keep = np.isfinite(labels).all(axis=1)
    if not keep.any():
        raise ModelError(f"library {name!r}: no template has finite Teff, log g and [M/H]")
    n = table["flux"].type.list_size

    def rows(col: str) -> np.ndarray:
        return table[col].combine_chunks().flatten().to_numpy(zero_copy_only=False).reshape(-1, n)

    ids = table["template_id"].to_numpy(zero_copy_only=False)
    return ids[keep], rows("flux")[keep], rows("ivar")[keep], labels[keep]


def fit_spectra(rb: pa.RecordBatch, lib, template_ids: np.ndarray, cfg, library: str, run_id: str) -> pa.Table:
    """One batch of observed spectra (SPECTRA_SQL rows) -> lsp_results rows."""
    fv, off, _ = list_to_numpy(rb.column("flux"))
    iv, off_iv, _ = list_to_numpy(rb.column("ivar"))
    if not np.array_equal(off, off_iv):
        raise ModelError("lsp_results: flux and ivar lists differ in length for some obsid")
    rv = rb.column("rv_kms").to_numpy(zero_copy_only=False).astype(np.float64)     # NULL -> NaN: fitted
    res = fit_observed(fv, iv, off, rb.column("loglam0").to_numpy(zero_copy_only=False),
                       rb.column("dloglam").to_numpy(zero_copy_only=False), rv, lib, cfg.laspm)
    fit = res.fit
    best = [[int(template_ids[i]) for i in row if i >= 0] for row in fit.best_idx]
    n = rb.num_rows

    def col(a):
        return pa.array(np.where(np.isfinite(a), a, np.nan), pa.float64(), from_pandas=True)

    return pa.table({
        "library": pa.array([library] * n), "obsid": rb.column("obsid"),
        **{c: col(fit.labels[:, j]) for j, c in enumerate(LABELS)},
        **{e: col(fit.labels_err[:, j]) for j, e in enumerate(("teff_err_k", "logg_err_dex", "mh_err_dex"))},
        "chi2_min": col(fit.chi2_min), "chi2_nu": col(fit.chi2_nu),
        "best_template_ids": pa.array(best, pa.list_(pa.int64())),
        "rv_used_kms": col(res.rv_used_kms),
        "rv_source": pa.array(np.where(res.rv_fitted, "fitted", "header")),
        "rv_err_kms": col(res.rv_err_kms),
        "n_good_pix": pa.array(fit.n_good_pix, pa.int64()), "snr_i": rb.column("snr_i"),
        "flags": pa.array(fit.flags, pa.int32()), "run_id": pa.array([run_id] * n),
    })


@python_model(
    name="lsp_results", layer="laspm", columns=RESULT_COLUMNS,
    inputs={"spectra": SPECTRA_SQL, "derived": DERIVED_SQL, "empirical": EMPIRICAL_SQL},
    params=FIT_PARAMS, partition_by="library", partitions="laspm.libraries",
    partition_token=templates_token, partition_inputs=("derived", "empirical"),
    description="LASPM parameters of every M-type LAMOST spectrum (paper §4), one result set per template "
                "library of laspm.libraries: the k-best-weighted labels, their spread, chi^2, the RV used "
                "(fitted and flagged where the header had none) and quality flags.",
    grain="one row per (library, obsid)",
    tests="unique(library, obsid); not_null(library, obsid, flags, rv_source)",
)
def build_results(ctx):
    cfg = ctx.cfg
    table = ctx.table("derived" if ctx.partition in DERIVED else "empirical")
    ids, flux, ivar, labels = library_arrays(table, ctx.partition)
    loglam0, dloglam, n = grid(cfg, "red")
    if flux.shape[1] != n:
        raise ModelError(f"library {ctx.partition!r} has {flux.shape[1]} pixels, the red grid {n}: "
                         "re-ingest it with this config")
    mask = pixel_mask_outside(loglam0, dloglam, n, cfg.laspm.mask_windows_aa)
    lib = prepare_library(flux, ivar, labels, cfg.laspm.poly_degree, loglam0, dloglam, mask)
    for rb in ctx.batches("spectra", 4 * cfg.laspm.batch_spectra, desc=f"lsp_results[{ctx.partition}]"):
        yield fit_spectra(rb, lib, ids, cfg, ctx.partition, ctx.run_id)


# --------------------------------------------------------------------------- the laspm_fit SQL function

UDF_FIELDS = (("teff_k", "DOUBLE"), ("logg_dex", "DOUBLE"), ("mh_dex", "DOUBLE"), ("teff_err_k", "DOUBLE"),
              ("logg_err_dex", "DOUBLE"), ("mh_err_dex", "DOUBLE"), ("chi2_nu", "DOUBLE"),
              ("rv_used_kms", "DOUBLE"), ("flags", "INTEGER"))


def register_laspm_udf(con, cfg, library: str | None = None) -> None:
    """``laspm_fit(flux, ivar, loglam0, dloglam, rv_kms)`` as a DuckDB function on ``con``: the engine
    over library ``library`` (default ``laspm.udf_library``), read once from the warehouse. A NULL
    ``rv_kms`` is fitted, as in lsp_results. Returns a struct of the labels, errors, chi2_nu, the RV
    used and the flags."""
    import duckdb
    from duckdb.sqltypes import DOUBLE, FLOAT, INTEGER

    library = library or cfg.laspm.udf_library
    rel = "lsp_library" if library in DERIVED else "landing.library_spectra"
    try:
        table = con.sql(f"select {TEMPLATE_COLUMNS} from {rel} where library = ? order by template_id",
                        params=[library]).to_arrow_table()
    except duckdb.CatalogException:
        raise ModelError(f"laspm_fit: no library {library!r} in this warehouse ({rel} is missing)") from None
    _, flux, ivar, labels = library_arrays(table, library)
    loglam0, dloglam, n = grid(cfg, "red")
    lib = prepare_library(flux, ivar, labels, cfg.laspm.poly_degree, loglam0, dloglam,
                          pixel_mask_outside(loglam0, dloglam, n, cfg.laspm.mask_windows_aa))

    def fit(flux, ivar, loglam0, dloglam, rv_kms):
        fv, off, valid = list_to_numpy(flux)
        iv, _, valid_iv = list_to_numpy(ivar)
        rv = rv_kms.to_numpy(zero_copy_only=False).astype(np.float64)
        res = fit_observed(fv, iv, off, loglam0.to_numpy(zero_copy_only=False).astype(np.float64),
                           dloglam.to_numpy(zero_copy_only=False).astype(np.float64), rv, lib, cfg.laspm)
        f = res.fit
        cols = [*(f.labels[:, j] for j in range(3)), *(f.labels_err[:, j] for j in range(3)), f.chi2_nu,
                res.rv_used_kms]
        arrays = [pa.array(np.where(np.isfinite(c), c, np.nan), from_pandas=True) for c in cols]
        arrays.append(pa.array(f.flags, pa.int32()))
        return pa.StructArray.from_arrays(arrays, [n for n, _ in UDF_FIELDS], mask=pa.array(~(valid & valid_iv)))

    struct = duckdb.struct_type({name: DOUBLE if t == "DOUBLE" else INTEGER for name, t in UDF_FIELDS})
    floats = duckdb.list_type(FLOAT)
    con.create_function("laspm_fit", fit, [floats, floats, DOUBLE, DOUBLE, DOUBLE], struct, type="arrow",
                        null_handling="special")
