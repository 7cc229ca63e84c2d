"""LAMOST ingest on small synthetic files written with astropy, with deliberate bad cases.

The fixture makers below (``dr8``, ``pilot``, ``coadd``, ``mrs``, ``truncate``...) are
the script that makes the fixtures: every file is built in a temp dir per test.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from mgold.pipeline.bench.ingest import DLOGLAM, LOGLAM0, N_PIXELS, write_dr8_fits
from mgold.pipeline.config import DEFAULT
from mgold.pipeline.ingest import lamost
from mgold.pipeline.datafiles import spectra_dir
from mgold.pipeline.ingest.lamost_fits import C_KMS, header_row, stable_obsid
from mgold.pipeline.warehouse import connect, open_warehouse

# --- fixture makers -----------------------------------------------------------------------


def dr8(folder: Path, obsid: int, name: str | None = None, seed: int | None = None,
        **kw) -> Path:
    rng = np.random.default_rng(obsid if seed is None else seed)
    return write_dr8_fits(folder / (name or f"spec-{obsid}.fits"), obsid, rng, **kw)


def pilot(folder: Path, fiberid: int = 68) -> Path:
    """DR1 pilot layout: row 2 is sub-continuum, no OBSID / DATA_V, SN_* keys."""
    n = 3904
    data = np.vstack([np.full(n, 100.0), np.full(n, 0.5), np.full(n, 1.0),  # row 2: continuum
                      np.zeros(n), np.zeros(n)]).astype(np.float32)
    hdu = fits.PrimaryHDU(data)
    for k, v in {"EXTEN0": "Flux Inverse Subcontinuum Andmask Ormask", "RA": 99.97,
                 "DEC": 27.98, "DESIG": "LAMOST J063954.36+275846.4", "CLASS": "STAR",
                 "SUBCLASS": "M0", "Z": -0.0002, "Z_ERR": 5e-5, "SN_U": 0.0, "SN_G": 8.8,
                 "SN_R": 23.8, "SN_I": 42.4, "SN_Z": 35.9, "LMJD": 55862, "MJD": 55863,
                 "PLANID": "B6212", "SPID": 6, "FIBERID": fiberid, "COEFF0": 3.5700,
                 "COEFF1": 1e-4, "VERSPIPE": "v2.6.4"}.items():
        hdu.header[k] = v
    path = folder / f"spec-55862-B6212_sp06-{fiberid:03d}.fits"
    hdu.writeto(path)
    return path


def coadd(folder: Path, obsid: int, name: str = "COADD", klass: str = "STAR") -> Path:
    """DR9+ layout: empty primary + 1-row BINTABLE of array columns."""
    n = 3909
    wave = (10 ** (LOGLAM0 + DLOGLAM * np.arange(n))).astype(np.float32)
    cols = [fits.Column(name=c, format=f"{n}E", array=a[None, :]) for c, a in
            (("FLUX", np.linspace(10, 20, n)), ("IVAR", np.full(n, 2.0)), ("WAVELENGTH", wave),
             ("ANDMASK", np.zeros(n)), ("ORMASK", np.ones(n)), ("NORMALIZATION", np.ones(n)))]
    primary = fits.PrimaryHDU()
    for k, v in {"OBSID": obsid, "DATA_V": "LAMOST DR9", "RA": 1.0, "DEC": 2.0, "CLASS": klass,
                 "SUBCLASS": "Non" if klass != "STAR" else "K7", "Z": 0.5, "Z_ERR": 1e-3,
                 "SNRI": 30.0, "COEFF0": LOGLAM0, "COEFF1": DLOGLAM}.items():
        primary.header[k] = v
    path = folder / f"spec-{obsid}.fits.gz"
    fits.HDUList([primary, fits.BinTableHDU.from_columns(cols, name=name)]).writeto(path)
    return path


def mrs(folder: Path) -> Path:
    """Medium-resolution layout (COADD_B / COADD_R tables) under an innocent file name."""
    col = [fits.Column(name="FLUX", format="E", array=np.ones(10))]
    path = folder / "spec-mrs-like.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(col, name="COADD_B"),
                  fits.BinTableHDU.from_columns(col, name="COADD_R")]).writeto(path)
    return path


def truncate(src: Path, dst: Path, fraction: float = 0.5) -> Path:
    raw = src.read_bytes()
    dst.write_bytes(raw[:int(len(raw) * fraction)])
    return dst


def ingest(folder_or_files, warehouse: Path, cfg=DEFAULT, workers: int = 1):
    """One `mgold ingest lamost` call: the warehouse opened (and locked) once around it."""
    paths = folder_or_files if isinstance(folder_or_files, list) else [folder_or_files]
    with open_warehouse(warehouse, command="test ingest lamost") as con:
        return lamost.ingest_lamost(con, paths, cfg, workers=workers)


def query(warehouse: Path, sql: str, params=None):
    con = connect(warehouse, read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


@pytest.fixture()
def inbox(tmp_path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    return d


# --- good files ---------------------------------------------------------------------------


def test_dr8_file_lands_with_headers_and_the_exact_header_grid(inbox, warehouse):
    for obsid in (101, 102, 103):
        dr8(inbox, obsid)
    report = ingest(inbox, warehouse)
    assert (report.files_loaded, report.rows_loaded, report.rejected) == (3, 3, 0)
    row = query(warehouse, "select obsid, class, subclass, snr_i, data_v, z, rv_kms, rv_source, "
                           "n_pixels, wave_min_aa, wave_max_aa, is_star, layout, file_sha256 "
                           "from landing.lamost_headers where obsid = 102")[0]
    obsid, klass, sub, snr_i, data_v, z, rv, rv_source, n, wmin, wmax, is_star, layout, sha = row
    assert (obsid, klass, sub, snr_i, data_v, layout) == (102, "STAR", "dM2", 40.0,
                                                            "LAMOST DR8", "image5")
    assert rv == pytest.approx(C_KMS * z) and rv_source == "c*z"
    assert n == N_PIXELS and is_star and len(sha) == 64
    assert wmin == pytest.approx(10 ** LOGLAM0) and wmax == pytest.approx(
        10 ** (LOGLAM0 + DLOGLAM * (N_PIXELS - 1)))
    grid = query(warehouse, "select distinct loglam0, dloglam from landing.lamost_spectra")
    assert grid == [(LOGLAM0, DLOGLAM)]  # float32 wavelengths snapped to COEFF0/COEFF1


def test_view_reads_back_identical_arrays(inbox, warehouse):
    path = dr8(inbox, 7)
    ingest(inbox, warehouse)
    with fits.open(path) as h:
        data = np.array(h[0].data)
    flux, ivar, pixmask = query(warehouse, "select flux, ivar, pixmask from landing.lamost_spectra "
                                           "where obsid = 7")[0]
    np.testing.assert_array_equal(np.array(flux, np.float32), data[0])
    np.testing.assert_array_equal(np.array(ivar, np.float32), data[1])
    np.testing.assert_array_equal(np.array(pixmask), data[4].astype(np.int32))  # ormask
    assert np.array(pixmask).max() == 1 << 23


def test_spectra_parquet_schema_is_the_contract(inbox, warehouse):
    dr8(inbox, 1)
    ingest(inbox, warehouse)
    (part,) = spectra_dir(warehouse).glob("*.parquet")
    assert part.name.startswith("part-")
    schema = pq.read_schema(part)
    assert [(f.name, str(f.type)) for f in schema] == [
        ("obsid", "int64"), ("loglam0", "double"), ("dloglam", "double"),
        ("flux", "list<element: float>"), ("ivar", "list<element: float>"),
        ("pixmask", "list<element: int32>")]


def test_reingest_of_the_same_files_is_a_no_op(inbox, warehouse):
    for obsid in (1, 2):
        dr8(inbox, obsid)
    ingest(inbox, warehouse)
    parts = sorted(spectra_dir(warehouse).glob("*.parquet"))
    again = ingest(inbox, warehouse)
    assert (again.files_skipped, again.files_loaded, again.rows_loaded, again.rejected) == (2, 0, 0, 0)
    assert sorted(spectra_dir(warehouse).glob("*.parquet")) == parts
    assert query(warehouse, "select count(*) from landing.lamost_spectra") == [(2,)]
    assert query(warehouse, "select count(*) from meta.ingested_files") == [(2,)]


def test_pilot_layout_takes_wavelength_from_coeff_and_gets_a_stable_id(inbox, warehouse):
    pilot(inbox)
    report = ingest(inbox, warehouse)
    assert report.rows_loaded == 1 and report.rejected == 0
    obsid, data_v, layout, wmin, snr_i = query(
        warehouse, "select obsid, data_v, layout, wave_min_aa, snr_i from landing.lamost_headers")[0]
    assert obsid == stable_obsid("LAMOST J063954.36+275846.4|55862|B6212|6|68")
    assert obsid < 0 and layout == "dr1_pilot" and data_v == "LAMOST pipeline v2.6.4"
    assert wmin == pytest.approx(10 ** 3.57) and snr_i == pytest.approx(42.4)
    assert query(warehouse, "select loglam0, dloglam from landing.lamost_spectra") == [(3.57, 1e-4)]


def test_coadd_table_layout_lands_and_non_star_is_flagged(inbox, warehouse):
    coadd(inbox, 9001)
    coadd(inbox, 9002, klass="QSO")
    report = ingest(inbox, warehouse)
    assert report.rows_loaded == 2 and report.rejected == 0
    rows = query(warehouse, "select obsid, is_star, layout, n_pixels from landing.lamost_headers "
                            "order by obsid")
    assert rows == [(9001, True, "coadd_table", 3909), (9002, False, "coadd_table", 3909)]
    (pixmask,) = query(warehouse, "select pixmask from landing.lamost_spectra where obsid = 9001")[0]
    assert set(pixmask) == {1}


def test_medium_resolution_file_is_refused_with_a_message(inbox, warehouse, capsys):
    mrs(inbox)
    dr8(inbox, 5)
    report = ingest(inbox, warehouse)
    assert report.rows_loaded == 1 and report.rejected == 1
    assert "medium-resolution" in capsys.readouterr().err
    assert query(warehouse, "select count(*) from meta.ingest_errors where severity = 'error' "
                            "and reason like 'medium-resolution%'") == [(1,)]


# --- bad input never costs good data --------------------------------------------------------


def test_truncated_and_corrupt_files_are_rejected_and_the_rest_lands(inbox, warehouse, capsys):
    good = dr8(inbox, 1)
    gz = dr8(inbox, 2, name="spec-2.fits.gz")
    truncate(good, inbox / "cut.fits", 0.5)
    truncate(gz, inbox / "cut.fits.gz", 0.5)
    (inbox / "garbage.fits").write_bytes(b"this is not FITS" * 400)
    (inbox / "empty.fits").write_bytes(b"")
    (inbox / "badgzip.fits.gz").write_bytes(b"\x1f\x8b" + b"\x00" * 100)
    report = ingest(inbox, warehouse)
    assert (report.rows_loaded, report.rejected) == (2, 5)
    err = capsys.readouterr().err
    for name in ("cut.fits", "cut.fits.gz", "garbage.fits", "empty.fits", "badgzip.fits.gz"):
        assert f"{name}: " in err
    reasons = dict(query(warehouse, "select regexp_extract(file, '[^/]+$'), reason "
                                    "from meta.ingest_errors"))
    assert "truncated FITS" in reasons["cut.fits"]
    assert "truncated gzip" in reasons["cut.fits.gz"]
    assert "not a FITS file" in reasons["garbage.fits"]
    assert query(warehouse, "select count(*) from landing.lamost_spectra") == [(2,)]


def test_nan_and_inf_flux_pixels_are_masked_with_a_warning(inbox, warehouse):
    flux = np.full(N_PIXELS, 5.0)
    flux[[10, 20]] = np.nan
    flux[30] = np.inf
    dr8(inbox, 3, flux=flux)
    report = ingest(inbox, warehouse)
    assert report.rows_loaded == 1 and report.rejected == 0
    f, iv = query(warehouse, "select flux, ivar from landing.lamost_spectra")[0]
    f, iv = np.array(f), np.array(iv)
    assert np.isfinite(f).all() and (iv[[10, 20, 30]] == 0).all() and (iv[:10] > 0).all()
    assert query(warehouse, "select severity, reason from meta.ingest_errors") == [
        ("warning", "3 non-finite flux/ivar pixel(s) masked (ivar = 0)")]


def test_all_zero_ivar_is_rejected(inbox, warehouse):
    dr8(inbox, 4, ivar=np.zeros(N_PIXELS))
    dr8(inbox, 5)
    report = ingest(inbox, warehouse)
    assert (report.rows_loaded, report.rejected) == (1, 1)
    assert query(warehouse, "select reason from meta.ingest_errors") == [
        ("all pixels have ivar <= 0 (no usable data)",)]


def test_duplicate_obsid_keeps_the_first_in_batch_and_in_warehouse(inbox, warehouse, tmp_path):
    dr8(inbox, 42, name="a.fits", seed=1)
    dr8(inbox, 42, name="b.fits", seed=2)       # other content, same obsid
    first = ingest(inbox, warehouse)
    assert (first.rows_loaded, first.rejected) == (1, 1)
    assert query(warehouse, "select file like '%a.fits' from landing.lamost_headers") == [(True,)]
    later = tmp_path / "later"
    later.mkdir()
    dr8(later, 42, name="c.fits", seed=3)       # a changed file, obsid already landed
    again = ingest(later, warehouse)
    assert (again.rows_loaded, again.rejected) == (0, 1)
    assert query(warehouse, "select count(*) from meta.ingest_errors "
                            "where reason like 'duplicate obsid 42%'") == [(2,)]


def test_same_bytes_under_two_names_land_once(inbox, warehouse):
    a = dr8(inbox, 8)
    (inbox / "copy.fits").write_bytes(a.read_bytes())
    report = ingest(inbox, warehouse)
    assert (report.rows_loaded, report.files_skipped, report.rejected) == (1, 1, 0)


def test_missing_required_key_rejects_missing_optional_key_warns(inbox, warehouse):
    dr8(inbox, 10, header={"CLASS": None})
    dr8(inbox, 11, header={"Z": None, "SNRU": None})
    report = ingest(inbox, warehouse)
    assert (report.rows_loaded, report.rejected) == (1, 1)
    errors = query(warehouse, "select severity, reason from meta.ingest_errors order by severity")
    assert errors == [("error", "missing required header key CLASS"),
                      ("warning", "header key(s) missing, stored as NULL: Z, SNRU")]
    assert query(warehouse, "select z, rv_kms, rv_source, snr_u from landing.lamost_headers") == [
        (None, None, None, None)]


def test_wrong_header_types_reject_required_and_null_optional(inbox, warehouse):
    dr8(inbox, 12, header={"RA": "not-a-number"})
    dr8(inbox, 13, header={"SPID": "x"})
    report = ingest(inbox, warehouse)
    assert (report.rows_loaded, report.rejected) == (1, 1)
    reasons = [r for (r,) in query(warehouse, "select reason from meta.ingest_errors order by 1")]
    assert reasons[0].startswith("header key RA: expected float")
    assert reasons[1].startswith("header key SPID: expected int") and "NULL" in reasons[1]


def test_non_log_linear_grid_is_rejected(inbox, warehouse):
    wave = np.linspace(3700, 9100, N_PIXELS)     # linear, not log-linear
    dr8(inbox, 14, wave=wave)
    report = ingest(inbox, warehouse)
    assert report.rejected == 1
    assert "not log-linear" in query(warehouse, "select reason from meta.ingest_errors")[0][0]


def test_missing_path_is_reported_and_the_rest_lands(inbox, warehouse):
    dr8(inbox, 15)
    report = ingest([inbox, inbox / "nope*.fits"], warehouse)
    assert (report.rows_loaded, report.rejected) == (1, 1)
    assert "no such file" in query(warehouse, "select reason from meta.ingest_errors")[0][0]


def test_globs_and_files_are_accepted(inbox, warehouse):
    dr8(inbox, 16)
    dr8(inbox, 17, name="x-17.fits.gz")
    report = ingest([inbox / "spec-*.fits", inbox / "x-17.fits.gz"], warehouse)
    assert report.rows_loaded == 2


# --- sentinels, reversed grids, derived ids, short spectra --------------------------------------


def _header(**cards) -> dict:
    base = {"OBSID": 1, "RA": 10.0, "DEC": 20.0, "CLASS": "STAR", "Z": 1e-4, "Z_ERR": 1e-5,
            "SNRU": 1.0, "SNRG": 5.0, "SNRR": 20.0, "SNRI": 40.0, "SNRZ": 45.0,
            "DESIG": "LAMOST J000001.00+000000.0", "SUBCLASS": "dM2", "LMJD": 58000, "MJD": 57999,
            "PLANID": "P1", "SPID": 1, "FIBERID": 2}
    return {k: v for k, v in {**base, **cards}.items() if v is not None}


@pytest.mark.parametrize("z", [-9999, -9999.0, 9999.0, 99.0, -99999.0, float("nan"), float("inf")])
def test_redshift_sentinel_gives_null_rv_and_one_warning_not_a_velocity(z):
    warnings: list[str] = []
    row = header_row(_header(Z=z, Z_ERR=-9999.0), b"", warnings)
    assert (row["z"], row["z_err"], row["rv_kms"], row["rv_source"]) == (None, None, None, None)
    assert len(warnings) == 1 and warnings[0].startswith(
        "sentinel or non-finite value(s) stored as NULL: header key Z = ")
    assert "header key Z_ERR = -9999" in warnings[0] and warnings[0].endswith("(no radial velocity)")


def test_snr_sentinels_become_null_but_the_dr1_cap_of_99_is_a_value():
    warnings: list[str] = []
    row = header_row(_header(SNRI=-9999.0, SNRZ=9999.0, SNRR=99.0), b"", warnings)
    assert (row["snr_i"], row["snr_z"], row["snr_r"]) == (None, None, 99.0)
    assert row["rv_kms"] == pytest.approx(C_KMS * 1e-4)
    assert warnings == ["sentinel or non-finite value(s) stored as NULL: header key SNRI = -9999, "
                        "header key SNRZ = 9999"]


def test_header_rv_sentinel_falls_back_to_c_times_z_and_99_kms_is_a_velocity():
    warnings: list[str] = []
    row = header_row(_header(RV=-9999.0), b"", warnings)
    assert (row["rv_kms"], row["rv_source"]) == (pytest.approx(C_KMS * 1e-4), "c*z")
    assert warnings == ["sentinel or non-finite value(s) stored as NULL: header key RV = -9999"]
    assert header_row(_header(RV=99.0), b"", [])["rv_kms"] == 99.0


def test_required_position_sentinel_rejects_the_file(inbox, warehouse):
    dr8(inbox, 30, header={"RA": -9999.0})
    dr8(inbox, 31)
    report = ingest(inbox, warehouse)
    assert (report.rows_loaded, report.rejected) == (1, 1)
    assert query(warehouse, "select reason from meta.ingest_errors") == [
        ("header key RA = -9999 is a no-value sentinel (required key)",)]


def test_rv_failure_sentinel_lands_as_null_with_a_warning_row(inbox, warehouse):
    dr8(inbox, 32, header={"Z": -9999, "Z_ERR": -9999})
    report = ingest(inbox, warehouse)
    assert (report.rows_loaded, report.rejected) == (1, 0)
    assert query(warehouse, "select z, z_err, rv_kms, rv_source from landing.lamost_headers") == [
        (None, None, None, None)]
    assert query(warehouse, "select severity, reason from meta.ingest_errors") == [
        ("warning", "sentinel or non-finite value(s) stored as NULL: header key Z = -9999, "
                    "header key Z_ERR = -9999 (no radial velocity)")]


@pytest.mark.real
@pytest.mark.parametrize("name", [
    "dr8_repeat_observations/20220313_CCF_test_grouped_fits/spec-57330-EG220307N031056M01_sp07-153.fits.gz",
    "dr9_dr13_table_format/spec-60591-LN042429N340750BM01_sp01-004.fits.gz",
    "dr1_pilot_b6212/spec-55862-B6212_sp06-005.fits",
])
def test_real_file_with_z_set_to_the_sentinel_lands_without_a_velocity(real_data, tmp_path, name):
    src = real_data / "lamost" / name
    if not src.exists():
        pytest.skip(f"{src} absent")
    dst = tmp_path / src.name
    with fits.open(src) as h:
        assert h[0].header["Z"] != -9999
        h[0].header["Z"] = -9999
        h.writeto(dst, output_verify="ignore")   # as LAMOST wrote it; .gz names compressed
    wh = tmp_path / "w.duckdb"
    report = ingest([dst], wh)
    assert (report.rows_loaded, report.rejected) == (1, 0)
    assert query(wh, "select z, rv_kms, rv_source from landing.lamost_headers") == [(None, None, None)]
    reasons = [r for (r,) in query(wh, "select reason from meta.ingest_errors "
                                       "where severity = 'warning' and reason like 'sentinel%'")]
    assert reasons == ["sentinel or non-finite value(s) stored as NULL: header key Z = -9999 "
                       "(no radial velocity)"]


def test_parquet_row_with_the_rv_sentinel_gets_null_and_a_warning(inbox, warehouse):
    spectra_table_file(inbox / "t.parquet", n=3, z=[-9999.0, 1e-4, float("nan")],
                       rv_kms=[-9999.0, -9999.0, None])
    report = ingest(inbox, warehouse)
    assert (report.rows_loaded, report.rejected) == (3, 0)
    assert query(warehouse, "select obsid, z, rv_kms, rv_source from landing.lamost_headers "
                            "order by obsid") == [
        (500, None, None, None), (501, 1e-4, pytest.approx(C_KMS * 1e-4), "c*z"),
        (502, None, None, None)]
    assert query(warehouse, "select row, severity, reason from meta.ingest_errors order by row") == [
        (0, "warning", "sentinel or non-finite value(s) stored as NULL: column z = -9999, "
                       "column rv_kms = -9999 (no radial velocity)"),
        (1, "warning", "sentinel or non-finite value(s) stored as NULL: column rv_kms = -9999"),
        (2, "warning", "sentinel or non-finite value(s) stored as NULL: column z = nan "
                       "(no radial velocity)")]


def test_reversed_wavelength_row_is_rejected_as_decreasing(inbox, warehouse):
    wave = 10 ** (LOGLAM0 + DLOGLAM * np.arange(N_PIXELS))
    dr8(inbox, 33, wave=wave[::-1])
    report = ingest(inbox, warehouse)
    assert report.rejected == 1
    (reason,) = query(warehouse, "select reason from meta.ingest_errors")[0]
    assert reason.startswith("wavelength grid is decreasing (9099.") and "reversed" in reason


def test_wavelength_row_that_turns_back_names_the_pixel(inbox, warehouse):
    wave = 10 ** (LOGLAM0 + DLOGLAM * np.arange(N_PIXELS))
    wave[[100, 101]] = wave[[101, 100]]
    dr8(inbox, 34, wave=wave)
    ingest(inbox, warehouse)
    (reason,) = query(warehouse, "select reason from meta.ingest_errors")[0]
    assert reason.startswith("wavelength grid is not increasing at pixel 101 ")


def test_file_without_obsid_is_keyed_by_its_header_key_whatever_its_name(inbox, tmp_path):
    path = dr8(inbox, 35, header={"OBSID": None})
    renamed = tmp_path / "other" / "renamed.fits.gz"
    renamed.parent.mkdir()
    renamed.write_bytes(gzip.compress(path.read_bytes()))
    key = "LAMOST J000035.00+000000.0|58000|SYNTH01|4|36"
    for src, wh in ((inbox, tmp_path / "a.duckdb"), (renamed, tmp_path / "b.duckdb")):
        ingest(src, wh)
        assert query(wh, "select obsid from landing.lamost_headers") == [(stable_obsid(key),)]
        assert query(wh, "select severity, reason from meta.ingest_errors") == [
            ("warning", f"no OBSID: keyed by derived obsid {stable_obsid(key)} = hash of "
                        f"designation|lmjd|planid|spid|fiberid {key!r}")]


def test_file_without_obsid_or_fiber_is_keyed_by_its_content_so_a_copy_is_a_duplicate(
        inbox, warehouse, tmp_path):
    path = dr8(inbox, 36, header={"OBSID": None, "FIBERID": None})
    (inbox / "copy.fits.gz").write_bytes(gzip.compress(path.read_bytes()))  # other bytes on disk
    report = ingest(inbox, warehouse)
    assert (report.rows_loaded, report.rejected) == (1, 1)
    obsid = stable_obsid(hashlib.sha256(path.read_bytes()).hexdigest())
    assert query(warehouse, "select obsid from landing.lamost_headers") == [(obsid,)]
    reasons = [r for (r,) in query(warehouse, "select reason from meta.ingest_errors "
                                              "where severity = 'error'")]
    assert reasons == [f"duplicate obsid {obsid}: already landed (first kept)"]
    fresh = tmp_path / "fresh.duckdb"
    ingest([inbox / "copy.fits.gz"], fresh)         # a re-ingest elsewhere finds the same id
    assert query(fresh, "select obsid from landing.lamost_headers") == [(obsid,)]


def test_short_image_is_refused_with_the_reason_and_real_lengths_land(inbox, warehouse):
    dr8(inbox, 37, n_pixels=100)
    dr8(inbox, 38, n_pixels=DEFAULT.ingest.min_pixels)
    report = ingest(inbox, warehouse)
    assert (report.rows_loaded, report.rejected) == (1, 1)
    assert query(warehouse, "select reason from meta.ingest_errors") == [
        (f"100 pixels, far fewer than a LAMOST LRS spectrum (~3750-3910): refused below "
         f"ingest.min_pixels = {DEFAULT.ingest.min_pixels}",)]


def test_short_parquet_row_is_refused_like_a_short_file(inbox, warehouse):
    spectra_table_file(inbox / "short.parquet", n=2, n_pix=100)
    report = ingest(inbox, warehouse)
    assert (report.rows_loaded, report.rejected) == (0, 2)
    assert query(warehouse, "select count(*) from meta.ingest_errors "
                            "where reason like '100 pixels, far fewer%'") == [(2,)]


# --- streaming, parts, crash safety -----------------------------------------------------------


def test_parts_rotate_and_row_groups_follow_config(inbox, warehouse):
    for obsid in range(1, 8):
        dr8(inbox, obsid)
    cfg = DEFAULT.with_overrides({"ingest.spectra_per_file": 3, "ingest.spectra_per_row_group": 2})
    ingest(inbox, warehouse, cfg)
    parts = sorted(spectra_dir(warehouse).glob("*.parquet"))
    sizes = sorted(pq.ParquetFile(p).metadata.num_rows for p in parts)
    assert sizes == [1, 3, 3]
    groups = [pq.ParquetFile(p).metadata.num_row_groups for p in parts
              if pq.ParquetFile(p).metadata.num_rows == 3]
    assert groups == [2, 2]
    assert query(warehouse, "select count(distinct obsid) from landing.lamost_spectra") == [(7,)]


POOLED = DEFAULT.with_overrides({"ingest.pool_min_files": 8})


def test_two_worker_pool_gives_the_same_rows_as_one_process(tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for obsid in range(1, 40):
        dr8(folder, obsid)
    truncate(folder / "spec-1.fits", folder / "spec-cut.fits")
    r1 = ingest(folder, tmp_path / "one.duckdb", workers=1)
    r2 = ingest(folder, tmp_path / "two.duckdb", POOLED, workers=2)
    assert dataclasses.astuple(r1)[:5] == dataclasses.astuple(r2)[:5]
    sql = ("select obsid, md5(flux::varchar), md5(ivar::varchar), md5(pixmask::varchar) "
           "from landing.lamost_spectra order by obsid")
    assert query(tmp_path / "one.duckdb", sql) == query(tmp_path / "two.duckdb", sql)
    # the workers' spill files (see read_many) are all read back and deleted
    assert not list(spectra_dir(tmp_path / "two.duckdb").glob(".spill-*"))


def test_a_batch_below_pool_min_files_is_read_in_process(tmp_path, monkeypatch):
    for obsid in range(1, 6):
        dr8(tmp_path / "few", obsid)

    def no_pool(*args, **kwargs):
        raise AssertionError("a pool was started for 5 files")

    monkeypatch.setattr(lamost.mp, "get_context", no_pool)
    report = ingest(tmp_path / "few", tmp_path / "w.duckdb", workers=2)
    assert report.rows_loaded == 5


def test_spilled_chunk_reads_back_the_same_arrays_and_keeps_rejections(tmp_path):
    from mgold.pipeline.ingest.lamost_fits import init_worker, read_many, unspill

    for obsid in (1, 2, 3):
        dr8(tmp_path, obsid)
    truncate(tmp_path / "spec-2.fits", tmp_path / "spec-cut.fits")
    files = sorted(tmp_path.glob("*.fits"))
    init_worker(set(), DEFAULT.ingest.loglinear_rtol, DEFAULT.ingest.min_pixels)
    plain, none = read_many(files)
    spilled, spill = read_many(files, tmp_path)
    assert none is None and spill is not None and Path(spill[0]).exists()
    back = unspill(spilled, spill)
    assert not Path(spill[0]).exists()
    assert [type(r[2]) for r in back] == [type(r[2]) for r in plain]
    for (_, _, a), (_, _, b) in zip(plain, back):
        if isinstance(a, str):
            assert a == b                                # the rejection reason rides along
            continue
        for attr in ("flux", "ivar", "pixmask"):
            np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr))
        assert a.header == b.header


def test_crash_before_commit_leaves_the_warehouse_intact(inbox, warehouse, tmp_path, monkeypatch):
    dr8(inbox, 1)
    ingest(inbox, warehouse)
    more = tmp_path / "more"
    more.mkdir()
    dr8(more, 2)

    def boom(*args, **kwargs):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(lamost, "_commit", boom)
    with pytest.raises(RuntimeError):
        ingest(more, warehouse)
    monkeypatch.undo()
    assert query(warehouse, "select obsid from landing.lamost_spectra") == [(1,)]
    assert query(warehouse, "select count(*) from landing.lamost_headers") == [(1,)]
    report = ingest(more, warehouse)           # a rerun lands what the crash lost
    assert report.rows_loaded == 1
    assert not list(spectra_dir(warehouse).glob("*.tmp"))
    assert query(warehouse, "select count(*) from landing.lamost_spectra") == [(2,)]


def test_parts_written_before_a_crash_are_never_read_and_the_next_writer_removes_them(inbox, warehouse,
                                                                                      tmp_path, monkeypatch):
    dr8(inbox, 1)
    ingest(inbox, warehouse)
    more = tmp_path / "more"
    more.mkdir()
    dr8(more, 2)
    monkeypatch.setattr(lamost._Sink, "discard", lambda self: None)      # a SIGKILL cleans nothing up
    monkeypatch.setattr(lamost, "_commit", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("killed")))
    with pytest.raises(RuntimeError):
        ingest(more, warehouse)
    monkeypatch.undo()
    parts = sorted(spectra_dir(warehouse).glob("*.parquet"))
    assert len(parts) == 2 and list(spectra_dir(warehouse).glob("*.tmp"))   # the orphan part + staging
    assert query(warehouse, "select obsid from landing.lamost_spectra") == [(1,)]
    again = ingest(more, warehouse)
    assert again.rows_loaded == 1 and not list(spectra_dir(warehouse).glob("*.tmp"))
    assert len(list(spectra_dir(warehouse).glob("*.parquet"))) == 2       # the orphan went, one new part
    assert query(warehouse, "select obsid from landing.lamost_spectra order by 1") == [(1,), (2,)]


# --- Parquet spectra tables -------------------------------------------------------------------


def spectra_table_file(path: Path, n: int = 3, bad_row: int | None = None,
                       n_pix: int = N_PIXELS, **columns) -> Path:
    """``n`` rows of ``n_pix`` pixels; ``bad_row`` has ivar = 0; ``columns`` replace columns."""
    rng = np.random.default_rng(0)
    flux = [rng.normal(10, 1, n_pix).astype(np.float32) for _ in range(n)]
    ivar = [np.full(n_pix, 4.0, np.float32) for _ in range(n)]
    if bad_row is not None:
        ivar[bad_row] = np.zeros(n_pix, np.float32)
    table = pa.table({
        "obsid": pa.array(range(500, 500 + n), pa.int64()),
        "designation": [f"J{i}" for i in range(n)], "ra_deg": [1.0] * n, "dec_deg": [2.0] * n,
        "class": ["STAR"] * (n - 1) + ["GALAXY"], "subclass": ["M1"] * n, "z": [1e-4] * n,
        "snr_i": [30.0] * n, "data_v": ["synthetic DR11"] * n, "layout": ["synthetic"] * n,
        "loglam0": [3.5682] * n, "dloglam": [1e-4] * n,
        "flux": pa.array([list(f) for f in flux], pa.list_(pa.float32())),
        "ivar": pa.array([list(v) for v in ivar], pa.list_(pa.float32())),
        "pixmask": pa.array([[0] * n_pix] * n, pa.list_(pa.int32())),
    })
    for name, values in columns.items():
        i = table.schema.get_field_index(name)
        table = (table.append_column(name, pa.array(values)) if i < 0
                 else table.set_column(i, name, pa.array(values, table.schema.field(name).type)))
    pq.write_table(table, path)
    return path


def test_parquet_spectra_table_lands_rows_and_rejects_bad_rows(inbox, warehouse):
    path = spectra_table_file(inbox / "universe.parquet", n=4, bad_row=1)
    report = ingest(inbox, warehouse)
    assert (report.files_loaded, report.rows_loaded, report.rejected) == (1, 3, 1)
    assert query(warehouse, "select row, reason from meta.ingest_errors") == [
        (1, "all pixels have ivar <= 0 (no usable data)")]
    rows = query(warehouse, "select obsid, is_star, n_pixels, data_v, layout, rv_source "
                            "from landing.lamost_headers order by obsid")
    assert rows[0] == (500, True, N_PIXELS, "synthetic DR11", "synthetic", "c*z")
    assert rows[-1][1] is False                       # GALAXY kept, flagged
    src = pq.read_table(path)
    back = query(warehouse, "select flux from landing.lamost_spectra where obsid = 502")[0][0]
    np.testing.assert_array_equal(np.array(back, np.float32),
                                  np.array(src.column("flux")[2].as_py(), np.float32))
    assert ingest(inbox, warehouse).files_skipped == 1


def test_parquet_table_without_required_columns_is_rejected(inbox, warehouse):
    pq.write_table(pa.table({"obsid": [1], "flux": [[1.0]]}), inbox / "thin.parquet")
    report = ingest(inbox, warehouse)
    assert report.rejected == 1 and report.rows_loaded == 0
    assert "lacks column(s)" in query(warehouse, "select reason from meta.ingest_errors")[0][0]


def test_headers_table_has_one_row_per_obsid(inbox, warehouse):
    dr8(inbox, 1)
    ingest(inbox, warehouse)
    con = connect(warehouse)
    try:
        with pytest.raises(duckdb.ConstraintException):
            con.execute("insert into landing.lamost_headers (obsid) values (1)")
    finally:
        con.close()


def test_gzip_and_plain_copies_give_identical_spectra(inbox, tmp_path):
    plain = dr8(inbox, 77)
    gz_dir = tmp_path / "gz"
    gz_dir.mkdir()
    (gz_dir / "spec-77.fits.gz").write_bytes(gzip.compress(plain.read_bytes()))
    ingest(inbox, tmp_path / "a.duckdb")
    ingest(gz_dir, tmp_path / "b.duckdb")
    sql = "select flux, ivar, pixmask, loglam0 from landing.lamost_spectra"
    assert query(tmp_path / "a.duckdb", sql) == query(tmp_path / "b.duckdb", sql)


# --- CLI ----------------------------------------------------------------------------------------


def test_cli_exits_3_when_something_was_rejected_and_0_otherwise(inbox, warehouse, tmp_path):
    from typer.testing import CliRunner

    from mgold.pipeline.cli import app

    dr8(inbox, 1)
    runner = CliRunner()
    ok = runner.invoke(app, ["ingest", "lamost", str(inbox), "-w", str(warehouse)])
    assert ok.exit_code == 0, ok.output
    assert "1 file(s) loaded" in ok.output
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "junk.fits").write_bytes(b"junk")
    rejected = runner.invoke(app, ["ingest", "lamost", str(bad), "-w", str(warehouse)])
    assert rejected.exit_code == 3


def test_parquet_table_with_a_wrongly_typed_column_is_rejected_by_name(inbox, warehouse):
    path = spectra_table_file(inbox / "typed.parquet", n=2)
    table = pq.read_table(path)
    table = table.set_column(table.schema.get_field_index("ra_deg"), "ra_deg",
                             pa.array(["east", "west"]))
    pq.write_table(table, path)
    report = ingest(inbox, warehouse)
    assert (report.rows_loaded, report.rejected) == (0, 1)
    (reason,) = query(warehouse, "select reason from meta.ingest_errors")[0]
    assert reason.startswith("unreadable spectra table: column ra_deg: expected double")


# --- benchmark ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_ingest_benchmark_reports_throughput_and_ratios():
    from mgold.pipeline.bench import discover

    figures = discover()["ingest"](n_files=40)
    for key in ("fits_spectra_per_s", "fits_gz_spectra_per_s", "astropy_read_only_spectra_per_s",
                "ratio_fits_gz_over_fits", "ratio_fits_ingest_over_astropy_read"):
        assert figures[key] > 0, key


def test_a_flood_of_row_warnings_prints_a_few_lines_and_keeps_every_row(capsys):
    from mgold.pipeline.warehouse import META_DDL, PRINTED_PER_RUN, record_ingest_error

    con = duckdb.connect()
    con.execute("create schema meta")
    con.execute(next(d for d in META_DDL if "meta.ingest_errors" in d))
    for row in range(PRINTED_PER_RUN + 30):
        record_ingest_error(con, "run-flood", "spectra.parquet", "rv_kms = -9999 stored as NULL", "warning", row)
    record_ingest_error(con, "run-flood", "bad.fits", "truncated", "error")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == PRINTED_PER_RUN + 2   # the first ones, one "more are not printed" line, the error
    assert "meta.ingest_errors" in err[PRINTED_PER_RUN] and err[-1] == "mgold: error: bad.fits: truncated"
    assert con.execute("select count(*) from meta.ingest_errors where run_id = 'run-flood'").fetchone()[0] \
        == PRINTED_PER_RUN + 31
