"""Spectra layer (paper §2.3): rest frame, common grids, SED recalibration.

Two Python models over the labelled stars' spectra (one spectrum per star: the
obsid that ``lbl_labelled_sample`` chose, its highest-S/N visit):

``spc_cluster_grid``  rest frame with the LAMOST 1D-pipeline RV (§2.3.1), resampled
                      once onto the clustering grid 3900-8800 AA (§2.4), then
                      recalibrated (§2.3.2): flux = P(x) * model SED, P a
                      ``spectra.sedcal_poly_order`` polynomial (2nd order in the
                      paper) fitted with line rejection; stored flux / P, ivar * P^2
                      and the coefficients of P.
``spc_red_grid``      the same spectra resampled onto the red grid 6000-8800 AA (§2.5,
                      for the neural net and LASPM), divided by the SAME polynomial P
                      (evaluated at the red pixels in the clustering grid's x scale),
                      so one recalibration serves both grids and nothing is
                      interpolated twice.

Reference SED (§2.3.2): dwarfs use family ``bt_settl_like``, giants ``marcs_like``
(``landing.model_sed_grid``). The node is the NEAREST grid point in labels, with
each axis scaled by that family's median node spacing (so one step in Teff weighs
like one step in log g or [M/H]). Nearest rather than trilinear: P only absorbs a
smooth 2nd-order shape, and the node spacing of the grid (~100 K) changes the SED
shape far less than the ~10% flux-calibration errors P removes.

Storage: a DuckDB table with fixed-length ``FLOAT[n]`` flux and ivar arrays (n from
the grid config, ``grid_columns``); the runner creates it from the declared columns,
fills it with the batches the model yields and swaps it in atomically. Streaming:
spectra are read in record batches of ``spectra.batch_spectra`` (bounded memory).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from mgold.udfs.grid import common_grid
from mgold.udfs.resample import resample, rest_frame_resample_batch
from mgold.udfs.sed_recalibrate import poly_eval, sed_recalibrate_batch

from ..config import Config
from ..pymodel import python_model

SED_FAMILY = {"dwarf": "bt_settl_like", "giant": "marcs_like"}   # paper §2.3.2

_COMMON_PARAMS = ("spectra.dloglam", "spectra.batch_spectra", "spectra.cluster_wave_min_aa",
                  "spectra.cluster_wave_max_aa", "spectra.sedcal_poly_order",
                  "spectra.sedcal_clip_nsigma", "spectra.sedcal_iterations")

# One spectrum per labelled star; rows without spectrum or RV cannot be put in the rest frame. No ORDER
# BY: each spectrum is processed alone, so the order changes nothing but the cost of sorting arrays.
SOURCE_SQL = """
select l.obsid, l.source_id, l.class, l.teff_k, l.logg_dex, l.mh_dex, h.rv_kms,
       s.loglam0, s.dloglam, s.flux, s.ivar
from lbl_labelled_sample l
join stg_lamost h using (obsid)
join landing.lamost_spectra s using (obsid)
where h.rv_kms is not null
"""
SEDS_SQL = """
select family, teff_k, logg_dex, mh_dex, loglam0, dloglam, flux
from landing.model_sed_grid
order by family, teff_k, logg_dex, mh_dex
"""


def grid(cfg: Config, which: str) -> tuple[float, float, int]:
    """``(loglam0, dloglam, n)`` of the ``'cluster'`` or ``'red'`` rest-frame grid."""
    s = cfg.spectra
    lo, hi = ((s.cluster_wave_min_aa, s.cluster_wave_max_aa) if which == "cluster"
              else (s.red_wave_min_aa, s.red_wave_max_aa))
    loglam0, n = common_grid(lo, hi, s.dloglam)
    return loglam0, s.dloglam, n


def poly_x_on(cluster: tuple[float, float, int], loglam: np.ndarray) -> np.ndarray:
    """The recalibration abscissa x (-1..1 over the clustering grid) at ``loglam``."""
    loglam0, dloglam, n = cluster
    return 2.0 * (loglam - loglam0) / (dloglam * (n - 1)) - 1.0


class ModelSeds:
    """Nearest model-SED node per star, resampled onto one grid (cached per node)."""

    def __init__(self, nodes: pa.Table, out_grid: tuple[float, float, int]):
        if nodes.num_rows == 0:
            raise ValueError("landing.model_sed_grid is empty: no reference SEDs for recalibration (§2.3.2)")
        self.family = np.asarray(nodes["family"].to_pylist())
        self.labels = np.column_stack([nodes[c].to_numpy(zero_copy_only=False).astype(float)
                                       for c in ("teff_k", "logg_dex", "mh_dex")])
        self.loglam0 = nodes["loglam0"].to_numpy(zero_copy_only=False)
        self.dloglam = nodes["dloglam"].to_numpy(zero_copy_only=False)
        self.flux = nodes["flux"]
        self.out_grid = out_grid
        self.scale = {f: _axis_steps(self.labels[self.family == f]) for f in set(self.family)}
        self._cache: dict[int, np.ndarray] = {}

    def nearest(self, family: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Node index per star (labels: (m, 3) teff, logg, mh); -1 when the family is missing."""
        out = np.full(len(family), -1, dtype=np.int64)
        for f in set(family):
            rows = np.flatnonzero(family == f)
            cand = np.flatnonzero(self.family == f)
            if cand.size == 0:
                continue
            d = (labels[rows, None, :] - self.labels[None, cand, :]) / self.scale[f]
            out[rows] = cand[np.argmin((d * d).sum(axis=2), axis=1)]
        return out

    def on_grid(self, node: int) -> np.ndarray:
        if node not in self._cache:
            f = np.asarray(self.flux[node].as_py(), dtype=np.float32)
            loglam0, dloglam, n = self.out_grid
            mf, miv = resample(f, np.ones_like(f), float(self.loglam0[node]), float(self.dloglam[node]),
                               loglam0, dloglam, n)
            self._cache[node] = np.where(miv > 0, mf, 0.0).astype(np.float32)
        return self._cache[node]


def _axis_steps(labels: np.ndarray) -> np.ndarray:
    steps = []
    for j in range(labels.shape[1]):
        u = np.unique(labels[:, j])
        steps.append(np.median(np.diff(u)) if u.size > 1 else 1.0)
    return np.asarray(steps)


def _list_buffers(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Flat float32 values and int64 offsets of a list<float> column (one chunk)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    offsets = arr.offsets.to_numpy().astype(np.int64)
    values = arr.values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return values, offsets


def _fixed(values: np.ndarray) -> pa.FixedSizeListArray:
    m, n = values.shape
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), pa.float32()), n)


def grid_columns(n: int, n_coef: int) -> dict[str, str]:
    """The columns of spc_cluster_grid / spc_red_grid: fixed-length arrays on an ``n``-pixel grid."""
    return {"obsid": "bigint", "source_id": "bigint", "class": "varchar", "rv_kms": "double",
            "loglam0": "double", "dloglam": "double", "n_pix": "integer", "n_good_pix": "integer",
            "sed_family": "varchar", "sed_teff_k": "double", "sed_logg_dex": "double", "sed_mh_dex": "double",
            "sedcal_coeffs": f"double[{n_coef}]", "flux": f"float[{n}]", "ivar": f"float[{n}]"}


def process_batch(rb: pa.RecordBatch, cfg: Config, seds: ModelSeds, out_grid, coeffs=None) -> pa.Table:
    """Rest frame + resample + recalibrate one record batch of SOURCE_SQL rows.

    ``coeffs`` None: fit P on ``out_grid`` (the clustering grid). Otherwise ``coeffs``
    maps obsid -> P coefficients fitted on the clustering grid, applied here.
    """
    s = cfg.spectra
    loglam0, dloglam, n = out_grid
    fv, off = _list_buffers(rb.column("flux"))
    iv, off_iv = _list_buffers(rb.column("ivar"))
    if not np.array_equal(off, off_iv):
        raise ValueError("flux and ivar lists differ in length for some obsid in landing.lamost_spectra")
    obsid = rb.column("obsid").to_numpy(zero_copy_only=False)
    rv = rb.column("rv_kms").to_numpy(zero_copy_only=False).astype(np.float64)
    flux, ivar = rest_frame_resample_batch(
        fv, iv, off, rb.column("loglam0").to_numpy(zero_copy_only=False).astype(np.float64),
        rb.column("dloglam").to_numpy(zero_copy_only=False).astype(np.float64), rv, loglam0, dloglam, n)
    cls = np.asarray(rb.column("class").to_pylist(), dtype=object)
    family = np.asarray([SED_FAMILY.get(c, "bt_settl_like") for c in cls])
    labels = np.column_stack([rb.column(c).to_numpy(zero_copy_only=False).astype(float)
                              for c in ("teff_k", "logg_dex", "mh_dex")])
    node = seds.nearest(family, labels)
    order = s.sedcal_poly_order
    if coeffs is None:
        model = np.stack([seds.on_grid(k) if k >= 0 else np.zeros(n, np.float32) for k in node])
        flux, ivar, c = sed_recalibrate_batch(flux, ivar, model, order, s.sedcal_clip_nsigma,
                                              s.sedcal_iterations)
    else:
        c = np.stack([coeffs.get(int(o), np.full(order + 1, np.nan)) for o in obsid])
        x = poly_x_on(grid(cfg, "cluster"), loglam0 + dloglam * np.arange(n))
        p = np.stack([poly_eval(ci, x) for ci in c])
        good = np.isfinite(p) & (p > 0)
        flux = np.where(good, flux / np.where(good, p, 1.0), 0.0).astype(np.float32)
        ivar = np.where(good, ivar * p * p, 0.0).astype(np.float32)
    n_good = (ivar > 0).sum(axis=1).astype(np.int32)
    safe = np.maximum(node, 0)
    missing = node < 0
    return pa.table({
        "obsid": pa.array(obsid, pa.int64()),
        "source_id": rb.column("source_id").cast(pa.int64()),
        "class": pa.array(cls.tolist(), pa.string()),
        "rv_kms": pa.array(rv),
        "loglam0": pa.array(np.full(len(obsid), loglam0)),
        "dloglam": pa.array(np.full(len(obsid), dloglam)),
        "n_pix": pa.array(np.full(len(obsid), n, np.int32)),
        "n_good_pix": pa.array(n_good),
        "sed_family": pa.array(family.tolist(), pa.string()),
        "sed_teff_k": pa.array(np.where(missing, np.nan, seds.labels[safe, 0]), from_pandas=True),
        "sed_logg_dex": pa.array(np.where(missing, np.nan, seds.labels[safe, 1]), from_pandas=True),
        "sed_mh_dex": pa.array(np.where(missing, np.nan, seds.labels[safe, 2]), from_pandas=True),
        "sedcal_coeffs": pa.FixedSizeListArray.from_arrays(pa.array(c.reshape(-1), pa.float64()), order + 1),
        "flux": _fixed(flux),
        "ivar": _fixed(ivar),
    })


class _NoSeds:
    """The red grid reuses the clustering-grid polynomial: it needs no model SED."""

    labels = np.full((1, 3), np.nan)

    def nearest(self, family, labels):
        return np.full(len(family), -1, dtype=np.int64)


@python_model(
    name="spc_cluster_grid", layer="spectra",
    columns=lambda cfg: grid_columns(grid(cfg, "cluster")[2], cfg.spectra.sedcal_poly_order + 1),
    inputs={"spectra": SOURCE_SQL, "seds": SEDS_SQL},
    params=_COMMON_PARAMS,
    description="Labelled stars' spectra in the rest frame on the 3900-8800 AA clustering grid, "
                "SED-recalibrated with a 2nd-order multiplicative polynomial (paper §2.3).",
    grain="one row per obsid (one spectrum per labelled star)",
    tests="unique(obsid); not_null(obsid, flux, ivar, n_good_pix)",
)
def build_cluster_grid(ctx):
    out_grid = grid(ctx.cfg, "cluster")
    seds = ModelSeds(ctx.table("seds"), out_grid)
    for rb in ctx.batches("spectra", ctx.cfg.spectra.batch_spectra):
        yield process_batch(rb, ctx.cfg, seds, out_grid)


@python_model(
    name="spc_red_grid", layer="spectra",
    columns=lambda cfg: grid_columns(grid(cfg, "red")[2], cfg.spectra.sedcal_poly_order + 1),
    inputs={"spectra": SOURCE_SQL, "coeffs": "select obsid, sedcal_coeffs from spc_cluster_grid"},
    params=_COMMON_PARAMS + ("spectra.red_wave_min_aa", "spectra.red_wave_max_aa"),
    description="The same spectra on the 6000-8800 AA red grid (paper §2.5), divided by the "
                "polynomial fitted on the clustering grid.",
    grain="one row per obsid (one spectrum per labelled star)",
    tests="unique(obsid); not_null(obsid, flux, ivar, n_good_pix)",
)
def build_red_grid(ctx):
    t = ctx.table("coeffs")
    coeffs = {int(o): np.asarray(c, dtype=np.float64)
              for o, c in zip(t["obsid"].to_pylist(), t["sedcal_coeffs"].to_pylist())}
    out_grid = grid(ctx.cfg, "red")
    for rb in ctx.batches("spectra", ctx.cfg.spectra.batch_spectra):
        yield process_batch(rb, ctx.cfg, _NoSeds(), out_grid, coeffs)
