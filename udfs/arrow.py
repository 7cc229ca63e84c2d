"""Arrow <-> numpy for spectrum columns, and the Arrow-level drivers of the kernels.

Spectra arrive as Arrow ``list<float>`` (observed, varying length) or
``fixed_size_list<float>[n]`` (common grid). `list_to_numpy` returns the child
values and absolute offsets without copying when the child is already float32
with no nulls; kernels then read ``values[offsets[r]:offsets[r+1]]``. Null
elements inside a list become NaN (bad pixel for the kernels); null rows come
back null.

The ``*_arrow`` functions are what the DuckDB UDFs call (one Arrow chunk of up to
2048 rows at a time); `rest_frame_resample_record_batch` is the batch driver a
stage calls directly over Parquet record batches (many rows, parallel kernel).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .resample import rest_frame_resample_batch, rest_frame_resample_ragged
from .rv_shift import rv_shift_batch
from .sed_recalibrate import sed_recalibrate_ragged


def _combine(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        return arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    return arr


def list_to_numpy(arr: pa.Array | pa.ChunkedArray, dtype=np.float32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(values, offsets int64, valid bool)`` of a list / large_list / fixed_size_list column.

    ``offsets`` index into ``values`` (absolute, so sliced arrays stay zero-copy);
    rows that are null have ``valid`` False and an empty range.
    """
    arr = _combine(arr)
    t = arr.type
    valid = np.ones(len(arr), dtype=bool) if arr.null_count == 0 else ~np.asarray(arr.is_null())
    if pa.types.is_fixed_size_list(t):
        size = t.list_size
        child = arr.values  # full child, ignores the slice offset
        offsets = (np.arange(len(arr) + 1, dtype=np.int64) + arr.offset) * size
    elif pa.types.is_list(t) or pa.types.is_large_list(t):
        child = arr.values
        offsets = np.asarray(arr.offsets, dtype=np.int64)
    else:
        raise TypeError(f"expected a list column of spectrum pixels, got Arrow type {t}")
    if not valid.all():
        offsets = offsets.copy()
        # a null row's range is undefined in Arrow: make it empty
        for r in np.flatnonzero(~valid):
            offsets[r + 1] = max(offsets[r + 1], offsets[r])
    if child.null_count:
        child = pc.fill_null(child.cast(pa.from_numpy_dtype(dtype)), np.nan)
    values = child.to_numpy(zero_copy_only=False)
    if values.dtype != dtype:
        values = values.astype(dtype)
    return values, offsets, valid


def scalar_to_numpy(arr: pa.Array | pa.ChunkedArray, dtype=np.float64) -> np.ndarray:
    """A numeric column as numpy; nulls become NaN (floats) so the caller can mask them."""
    arr = _combine(arr)
    if arr.null_count:
        arr = pc.fill_null(arr.cast(pa.float64()), np.nan)
    return arr.to_numpy(zero_copy_only=False).astype(dtype, copy=False)


def numpy_to_list(values: np.ndarray, offsets: np.ndarray, valid: np.ndarray | None = None,
                  value_type: pa.DataType = pa.float32()) -> pa.ListArray:
    """A ``list<value_type>`` array over ``values`` (no copy of values); rows with ``valid`` False are null."""
    if offsets.size and offsets[0] != 0:
        values = values[offsets[0]:offsets[-1]]
        offsets = offsets - offsets[0]
    mask = None if valid is None or valid.all() else pa.array(~valid)
    off = pa.array(offsets.astype(np.int32 if offsets.size == 0 or offsets[-1] < 2**31 else np.int64))
    ctor = pa.ListArray if off.type == pa.int32() else pa.LargeListArray
    return ctor.from_arrays(off, pa.array(values, type=value_type), mask=mask)


def rows_to_list(mat: np.ndarray, valid: np.ndarray | None = None,
                 value_type: pa.DataType = pa.float32()) -> pa.ListArray:
    """Rows of a 2-d array as ``list<value_type>``."""
    m, n = mat.shape
    return numpy_to_list(np.ascontiguousarray(mat).reshape(-1), np.arange(m + 1, dtype=np.int64) * n,
                         valid, value_type)


def rows_to_fixed_list(mat: np.ndarray, value_type: pa.DataType = pa.float32()) -> pa.FixedSizeListArray:
    """Rows of a 2-d array as ``fixed_size_list<value_type>[n]`` (DuckDB ``FLOAT[n]``)."""
    m, n = mat.shape
    return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(mat).reshape(-1), type=value_type), n)


def _valid_scalars(valid: np.ndarray, *cols: np.ndarray) -> np.ndarray:
    for c in cols:
        valid = valid & np.isfinite(c)
    return valid


def _struct(valid: np.ndarray, **fields: pa.Array) -> pa.StructArray:
    mask = None if valid.all() else pa.array(~valid)
    return pa.StructArray.from_arrays(list(fields.values()), names=list(fields), mask=mask)


def rv_shift_arrow(flux, ivar, loglam0, dloglam, rv_kms) -> pa.StructArray:
    """Arrow columns -> ``struct<flux: list<float>, ivar: list<float>>`` shifted to the rest frame."""
    fv, off, valid = list_to_numpy(flux)
    iv, ioff, ivalid = list_to_numpy(ivar)
    l0, dl, rv = scalar_to_numpy(loglam0), scalar_to_numpy(dloglam), scalar_to_numpy(rv_kms)
    valid = _valid_scalars(valid & ivalid, l0, dl, rv)
    iv = _aligned(iv, ioff, fv, off, valid, "ivar")
    rv = np.where(valid, rv, 0.0)
    of, oi = rv_shift_batch(fv, iv, off, l0, np.where(valid, dl, 1.0), rv)
    return _struct(valid, flux=numpy_to_list(of, off, valid), ivar=numpy_to_list(oi, off, valid))


def resample_arrow(flux, ivar, loglam0, dloglam, rv_kms, out_loglam0, out_dloglam, n_out) -> pa.StructArray:
    """Arrow columns -> ``struct<flux, ivar>`` resampled (after the rest-frame shift ``rv_kms``) per row."""
    fv, off, valid = list_to_numpy(flux)
    iv, ioff, ivalid = list_to_numpy(ivar)
    l0, dl, rv = scalar_to_numpy(loglam0), scalar_to_numpy(dloglam), scalar_to_numpy(rv_kms)
    ol0, odl, on = scalar_to_numpy(out_loglam0), scalar_to_numpy(out_dloglam), scalar_to_numpy(n_out)
    valid = _valid_scalars(valid & ivalid, l0, dl, rv, ol0, odl, on)
    iv = _aligned(iv, ioff, fv, off, valid, "ivar")
    bad_n = valid & ((on < 0) | (odl <= 0) | (dl <= 0))
    if bad_n.any():
        r = int(np.flatnonzero(bad_n)[0])
        raise ValueError(f"resample: row {r}: need n_out >= 0, out_dloglam > 0, dloglam > 0 "
                         f"(got {on[r]}, {odl[r]}, {dl[r]})")
    counts = np.where(valid, on, 0).astype(np.int64)
    out_off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    of, oi = rest_frame_resample_ragged(fv, iv, off, l0, np.where(valid, dl, 1.0), np.where(valid, rv, 0.0),
                                        np.where(valid, ol0, 0.0), np.where(valid, odl, 1.0), out_off)
    return _struct(valid, flux=numpy_to_list(of, out_off, valid), ivar=numpy_to_list(oi, out_off, valid))


def sed_recalibrate_arrow(flux, ivar, model_flux, order: int, clip_nsigma: float, iterations: int) -> pa.StructArray:
    """Arrow columns -> ``struct<flux: list<float>, ivar: list<float>, coeffs: list<double>>``."""
    fv, off, valid = list_to_numpy(flux)
    iv, ioff, ivalid = list_to_numpy(ivar)
    mv, moff, mvalid = list_to_numpy(model_flux)
    valid = valid & ivalid & mvalid
    iv = _aligned(iv, ioff, fv, off, valid, "ivar")
    _check_same_lengths(off, moff, "model_flux", valid)
    # null rows contribute nothing: collapse their ranges so the kernel skips them
    lens = np.where(valid, np.diff(off), 0)
    if not valid.all():
        keep = np.concatenate([np.arange(s, s + n) for s, n in zip(off[:-1], lens)]) if lens.sum() else \
            np.empty(0, dtype=np.int64)
        mkeep = np.concatenate([np.arange(s, s + n) for s, n in zip(moff[:-1], lens)]) if lens.sum() else \
            np.empty(0, dtype=np.int64)
        fv, iv, mv = fv[keep], iv[keep], mv[mkeep]
        off = moff = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    of, oi, coeffs = sed_recalibrate_ragged(fv, iv, mv, off, moff, int(order), float(clip_nsigma), int(iterations))
    rel = off - off[0]
    return _struct(valid, flux=numpy_to_list(of, rel, valid), ivar=numpy_to_list(oi, rel, valid),
                   coeffs=rows_to_list(coeffs, valid, pa.float64()))


def rest_frame_resample_record_batch(batch: pa.RecordBatch, out_loglam0: float, out_dloglam: float, n_out: int,
                                     rv_column: str | None = "rv_kms",
                                     keep_columns: tuple[str, ...] = ("obsid",)) -> pa.RecordBatch:
    """The stage driver: observed spectra (flux, ivar, loglam0, dloglam[, rv]) -> fixed-grid ``FLOAT[n_out]``.

    ``rv_column=None`` resamples without a Doppler shift. Rows whose inputs are
    null come back with ivar all 0. ``keep_columns`` are passed through.
    """
    missing = [c for c in ("flux", "ivar", "loglam0", "dloglam", *( [rv_column] if rv_column else []), *keep_columns)
               if c not in batch.schema.names]
    if missing:
        raise KeyError(f"rest_frame_resample_record_batch: batch lacks column(s) {', '.join(missing)}")
    fv, off, valid = list_to_numpy(batch.column("flux"))
    iv, ioff, ivalid = list_to_numpy(batch.column("ivar"))
    l0, dl = scalar_to_numpy(batch.column("loglam0")), scalar_to_numpy(batch.column("dloglam"))
    rv = scalar_to_numpy(batch.column(rv_column)) if rv_column else np.zeros(len(l0))
    valid = _valid_scalars(valid & ivalid, l0, dl, rv)
    iv = _aligned(iv, ioff, fv, off, valid, "ivar")
    of, oi = rest_frame_resample_batch(fv, iv, off, np.where(valid, l0, 0.0), np.where(valid, dl, 1.0),
                                       np.where(valid, rv, 0.0), float(out_loglam0), float(out_dloglam), int(n_out))
    oi[~valid] = 0.0
    cols = {c: batch.column(c) for c in keep_columns}
    cols["flux"] = rows_to_fixed_list(of)
    cols["ivar"] = rows_to_fixed_list(oi)
    return pa.RecordBatch.from_pydict(cols)


def _aligned(values: np.ndarray, src_off: np.ndarray, like: np.ndarray, dst_off: np.ndarray, valid: np.ndarray,
             name: str) -> np.ndarray:
    """``values`` laid out like ``like`` (rows at ``dst_off``), so kernels index both with one offsets array.

    No copy when the layouts already agree (the usual case: flux and ivar written together).
    """
    _check_same_lengths(dst_off, src_off, name, valid)
    if np.array_equal(src_off, dst_off) and values.shape == like.shape:
        return values
    lens = np.where(valid, np.diff(dst_off), 0)
    rows = np.repeat(np.arange(lens.size), lens)
    local = np.arange(rows.size) - np.repeat(np.cumsum(lens) - lens, lens)
    out = np.zeros(like.shape[0], dtype=values.dtype)
    out[dst_off[:-1][rows] + local] = values[src_off[:-1][rows] + local]
    return out


def _check_same_lengths(off: np.ndarray, other: np.ndarray, name: str, valid: np.ndarray | None = None) -> None:
    bad = np.diff(off) != np.diff(other)
    if valid is not None:
        bad &= valid
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise ValueError(f"row {r}: flux has {off[r + 1] - off[r]} pixels but {name} has {other[r + 1] - other[r]}")
