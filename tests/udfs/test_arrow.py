"""udfs/arrow.py: Arrow list columns <-> numpy views, and the Arrow-level drivers."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from naive import assert_close, naive_resample, naive_rv_shift

from mgold.udfs.arrow import (list_to_numpy, numpy_to_list, rest_frame_resample_record_batch, rows_to_fixed_list,
                              rv_shift_arrow, sed_recalibrate_arrow)


def test_list_to_numpy_is_zero_copy_for_float32_and_respects_slices():
    arr = pa.array([[1, 2, 3], [4], [5, 6]], type=pa.list_(pa.float32()))
    values, offsets, valid = list_to_numpy(arr.slice(1, 2))
    assert values.base is not None or not values.flags.owndata  # a view on the Arrow buffer
    assert [values[offsets[r]:offsets[r + 1]].tolist() for r in range(2)] == [[4.0], [5.0, 6.0]]
    assert valid.tolist() == [True, True]


def test_null_rows_and_null_pixels():
    arr = pa.array([[1.0, None], None, [3.0]], type=pa.list_(pa.float32()))
    values, offsets, valid = list_to_numpy(arr)
    assert valid.tolist() == [True, False, True]
    assert np.isnan(values[1]) and offsets[2] == offsets[1]


def test_fixed_size_lists_round_trip():
    mat = np.arange(12, dtype=np.float32).reshape(3, 4)
    arr = rows_to_fixed_list(mat)
    assert arr.type == pa.list_(pa.float32(), 4)
    values, offsets, _ = list_to_numpy(arr.slice(1))
    assert values[offsets[0]:offsets[1]].tolist() == [4, 5, 6, 7]


def test_numpy_to_list_rebases_offsets():
    out = numpy_to_list(np.arange(6, dtype=np.float32), np.array([2, 4, 6]), np.array([True, False]))
    assert out.to_pylist() == [[2.0, 3.0], None]


def test_rv_shift_arrow_matches_naive_and_keeps_nulls():
    rng = np.random.default_rng(0)
    rows = [rng.normal(1, 0.1, n).astype(np.float32) for n in (30, 0, 45)]
    flux = pa.array([r.tolist() for r in rows] + [None], type=pa.list_(pa.float32()))
    ivar = pa.array([[100.0] * len(r) for r in rows] + [[1.0]], type=pa.list_(pa.float32()))
    l0 = pa.array([3.6, 3.6, 3.59, 3.6])
    dl = pa.array([1e-4] * 4)
    rv = pa.array([50.0, 10.0, -80.0, 0.0])
    out = rv_shift_arrow(flux, ivar, l0, dl, rv).to_pylist()
    assert out[3] is None
    for r, spec in enumerate(rows):
        want = naive_rv_shift(spec, np.full(len(spec), 100, np.float32), l0[r].as_py(), 1e-4, rv[r].as_py())
        assert_close(out[r]["flux"], want[0])
        assert_close(out[r]["ivar"], want[1])


def test_rv_shift_arrow_names_the_row_with_mismatched_lengths():
    flux = pa.array([[1.0, 2.0], [1.0]], type=pa.list_(pa.float32()))
    ivar = pa.array([[1.0, 2.0], [1.0, 1.0]], type=pa.list_(pa.float32()))
    with pytest.raises(ValueError, match="row 1: flux has 1 pixels but ivar has 2"):
        rv_shift_arrow(flux, ivar, pa.array([3.6, 3.6]), pa.array([1e-4, 1e-4]), pa.array([0.0, 0.0]))


def test_record_batch_driver_gives_fixed_grid_arrays():
    rng = np.random.default_rng(1)
    specs = [rng.normal(1, 0.1, 200).astype(np.float32) for _ in range(3)]
    batch = pa.RecordBatch.from_pydict({
        "obsid": pa.array([10, 11, 12], pa.int64()),
        "loglam0": [3.6, 3.6001, 3.5999], "dloglam": [1e-4] * 3, "rv_kms": [0.0, 30.0, None],
        "flux": pa.array([s.tolist() for s in specs], pa.list_(pa.float32())),
        "ivar": pa.array([[4.0] * 200] * 3, pa.list_(pa.float32())),
    })
    out = rest_frame_resample_record_batch(batch, 3.601, 2e-4, 80)
    assert out.schema.names == ["obsid", "flux", "ivar"]
    assert out.schema.field("flux").type == pa.list_(pa.float32(), 80)
    got = out.column("flux").to_pylist()[0]
    assert_close(got, naive_resample(specs[0], np.full(200, 4, np.float32), 3.6, 1e-4, 3.601, 2e-4, 80)[0])
    assert all(v == 0 for v in out.column("ivar").to_pylist()[2])  # null rv: unusable row
    with pytest.raises(KeyError, match="rv_kms"):
        rest_frame_resample_record_batch(batch.drop_columns(["rv_kms"]), 3.601, 2e-4, 80)


def test_sed_recalibrate_arrow_returns_coefficients_per_row():
    x = np.linspace(-1, 1, 50)
    model = (1 + 0.2 * np.cos(x * 9)).astype(np.float32)
    flux = (model * (1.0 + 0.1 * x)).astype(np.float32)
    out = sed_recalibrate_arrow(pa.array([flux.tolist(), None]), pa.array([[1.0] * 50, [1.0]]),
                                pa.array([model.tolist(), [1.0]]), 2, 3.0, 5).to_pylist()
    assert out[1] is None
    assert out[0]["coeffs"] == pytest.approx([1.0, 0.1, 0.0], abs=1e-5)
    assert out[0]["flux"] == pytest.approx(model.tolist(), rel=1e-5)


def test_ivar_with_a_different_buffer_layout_is_realigned_to_flux():
    flux = pa.array([[1.0, 2.0, 3.0], [4.0, 5.0]], type=pa.list_(pa.float32()))
    ivar = pa.array([[9.0], [1.0, 1.0, 1.0], [2.0, 2.0]], type=pa.list_(pa.float32())).slice(1)
    out = rv_shift_arrow(flux, ivar, pa.array([3.6, 3.6]), pa.array([1e-4, 1e-4]), pa.array([0.0, 0.0]))
    assert out.to_pylist() == [{"flux": [1.0, 2.0, 3.0], "ivar": [1.0, 1.0, 1.0]},
                               {"flux": [4.0, 5.0], "ivar": [2.0, 2.0]}]
