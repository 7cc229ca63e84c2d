"""Leave-one-out validation of the golden sample (paper §3.1): the Python model ``gold_loo``.

"We treated each spectrum in the samples as an unknown target and determined its parameters
from the remaining samples." Here that is ONE batched all-vs-all computation through the LASPM
engine (``mgold.udfs.laspm``, the same engine and ``laspm.*`` settings ``lsp_results`` uses):
the golden spectra (``cln_nn_kept`` on ``spc_red_grid``: rest frame, recalibrated, red grid)
are prepared once as a library, and every one of them is fitted against all of them with
itself excluded (``fit_batch(..., exclude=row)``: the screen keeps one candidate more and drops
the spectrum's own template). No RV is fitted: the spectra are already in the rest frame.

Per star: the derived labels (the k-best interpolation of §4.1), their spread, chi^2_nu, the
engine's flags (edge of library: every heavy template on the labels' convex hull) and
derived - label. ``hull_dist_steps`` is the star's distance inside the convex hull of the
golden labels, in bin steps (``clean.bin_*``: 50 K, 0.1, 0.1 dex, so one unit weighs alike in
each label): 0 on the hull, NaN when the labels span fewer than three dimensions. Paper Fig. 9's
edge effect, "derived parameters of stars at the edge ... pulled toward the interior", is the
bias of derived - label as a function of it (``mgold report golden``).

``leave_one_out`` is the pure function; ``mgold report golden`` runs it on the real MILES K/M
stars of ``landing.library_spectra`` too (mgold's first accuracy figure on real spectra).
A library of one star gets one flagged row (no other template: FLAG_NO_FIT, NaN labels); a
star with NaN labels is never a template and is left out (``usable_templates``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from mgold.udfs.laspm import FitResult, fit_batch, pixel_mask_outside, prepare_library

from ..config import Config
from ..pymodel import python_model
from .laspm import FIT_PARAMS, LABELS
from .nn import label_matrix, spectra_matrix
from .spectra import grid

STEP_KEYS = ("clean.bin_teff_k", "clean.bin_logg_dex", "clean.bin_mh_dex")
LOO_NAMES = ("teff_loo_k", "logg_loo_dex", "mh_loo_dex")
LOO_ERR_NAMES = ("teff_loo_err_k", "logg_loo_err_dex", "mh_loo_err_dex")
LOO_RESID_NAMES = ("dteff_loo_k", "dlogg_loo_dex", "dmh_loo_dex")      # derived - label
# the engine's fit settings, without the RV fit (rest-frame spectra)
LOO_PARAMS = tuple(k for k in FIT_PARAMS if not k.startswith("laspm.rv_")) + STEP_KEYS

GOLDEN_RED_SQL = """
select g.obsid, g.class, g.teff_k, g.logg_dex, g.mh_dex, r.flux, r.ivar
from cln_nn_kept g
join spc_red_grid r using (obsid)
order by g.obsid
"""

LOO_COLUMNS = {
    "obsid": "bigint", "class": "varchar",
    **{c: "double" for c in LABELS},
    **{c: ("double", "label derived from the other golden spectra (k-best interpolation, paper §3.1)")
       for c in LOO_NAMES},
    **{c: ("double", "weighted spread of the k best templates' label") for c in LOO_ERR_NAMES},
    **{c: ("double", "derived - label") for c in LOO_RESID_NAMES},
    "chi2_nu": ("double", "reduced chi^2 of the best other template"),
    "flags": ("integer", "udfs/laspm.py FLAG_* bits: 1 edge of library, 2 poor fit, 4 few pixels, 32 no fit"),
    "best_obsids": ("bigint[]", "obsid of the k best other golden spectra, best first"),
    "hull_dist_steps": ("double", "distance inside the convex hull of the golden labels, in bin steps "
                                  "(0 = on the hull)"),
}


def usable_templates(labels: np.ndarray) -> np.ndarray:
    """True for rows whose three labels are finite (the others can label nothing)."""
    return np.isfinite(np.asarray(labels, dtype=np.float64)).all(axis=1)


def leave_one_out(flux: np.ndarray, ivar: np.ndarray, labels: np.ndarray, cfg: Config) -> FitResult:
    """Fit every red-grid spectrum (n, n_pix) against all the others (one library, self excluded)."""
    loglam0, dloglam, n_pix = grid(cfg, "red")
    flux, ivar = np.asarray(flux, dtype=np.float32), np.asarray(ivar, dtype=np.float32)
    if flux.ndim != 2 or flux.shape[1] != n_pix:
        raise ValueError(f"leave-one-out: spectra must be (n, {n_pix}) on the red grid, got {flux.shape}")
    lib = prepare_library(flux, ivar, labels, cfg.laspm.poly_degree, loglam0, dloglam,
                          pixel_mask_outside(loglam0, dloglam, n_pix, cfg.laspm.mask_windows_aa))
    return fit_batch(flux, ivar, lib, cfg.laspm, exclude=np.arange(flux.shape[0]))


def hull_distance_steps(labels: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """(n,) distance of each point inside the convex hull of ``labels`` (n, 3), each axis in units of
    ``steps``: the smallest distance to a facet plane; 0 on the hull; NaN for labels that span fewer
    than three dimensions (no hull)."""
    from scipy.spatial import ConvexHull, QhullError

    x = np.asarray(labels, dtype=np.float64) / np.asarray(steps, dtype=np.float64)
    out = np.full(x.shape[0], np.nan)
    if x.shape[0] < 4:
        return out
    try:
        hull = ConvexHull(x)
    except (QhullError, ValueError):
        return out
    normals, offsets = hull.equations[:, :-1], hull.equations[:, -1]     # unit outward normals: n.x + b <= 0
    depth = -(x @ normals.T + offsets[None, :])
    return np.clip(depth.min(axis=1), 0.0, None)


def loo_table(ids: np.ndarray, cls: list, labels: np.ndarray, fit: FitResult, hull_dist: np.ndarray) -> pa.Table:
    """The ``gold_loo`` rows of a leave-one-out fit of stars ``ids`` (template rows in the same order)."""
    def col(a):
        return pa.array(np.where(np.isfinite(a), a, np.nan), pa.float64(), from_pandas=True)

    resid = fit.labels - labels
    return pa.table({
        "obsid": pa.array(ids, pa.int64()), "class": pa.array(cls, pa.string()),
        **{c: col(labels[:, j]) for j, c in enumerate(LABELS)},
        **{c: col(fit.labels[:, j]) for j, c in enumerate(LOO_NAMES)},
        **{c: col(fit.labels_err[:, j]) for j, c in enumerate(LOO_ERR_NAMES)},
        **{c: col(resid[:, j]) for j, c in enumerate(LOO_RESID_NAMES)},
        "chi2_nu": col(fit.chi2_nu), "flags": pa.array(fit.flags, pa.int32()),
        "best_obsids": pa.array([[int(ids[i]) for i in row if i >= 0] for row in fit.best_idx], pa.list_(pa.int64())),
        "hull_dist_steps": col(hull_dist),
    })


@python_model(
    name="gold_loo", layer="golden", columns=LOO_COLUMNS, inputs={"golden": GOLDEN_RED_SQL}, params=LOO_PARAMS,
    description="Leave-one-out validation of the golden sample (paper §3.1, Fig. 9): every golden spectrum "
                "fitted by the LASPM engine against all the others, itself excluded, in one batched "
                "all-vs-all computation; derived labels, derived - label and the distance inside the "
                "labels' convex hull (the edge effect).",
    grain="one row per obsid of cln_nn_kept",
    tests="unique(obsid); not_null(obsid, flags)",
)
def build(ctx):
    t = ctx.table("golden")
    labels = label_matrix(t)
    if not usable_templates(labels).all():
        raise ValueError("gold_loo: cln_nn_kept holds labels that are not finite (the NN stage excludes them)")
    n_pix = grid(ctx.cfg, "red")[2]
    flux, ivar = spectra_matrix(t["flux"], n_pix), spectra_matrix(t["ivar"], n_pix)
    ivar = np.where(np.isfinite(flux), ivar, 0.0)          # a missing spectrum: no good pixel
    ids = t["obsid"].to_numpy(zero_copy_only=False).astype(np.int64)
    if ids.size == 0:
        return
    steps = np.array([ctx.cfg.clean.bin_teff_k, ctx.cfg.clean.bin_logg_dex, ctx.cfg.clean.bin_mh_dex])
    fit = leave_one_out(np.nan_to_num(flux), ivar, labels, ctx.cfg)
    yield loo_table(ids, t["class"].to_pylist(), labels, fit, hull_distance_steps(labels, steps))
