"""LAMOST ingest over every real file in ../shared/data/real/lamost (skips when absent).

Header values are compared with what astropy reads from the same file, so the
expectations are measured, not typed in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from mgold.pipeline.config import DEFAULT
from mgold.pipeline.ingest.lamost import expand_paths, ingest_lamost
from mgold.pipeline.ingest.lamost_fits import stable_obsid
from mgold.pipeline.warehouse import connect, open_warehouse

pytestmark = [pytest.mark.real, pytest.mark.slow]


@pytest.fixture(scope="module")
def landed(real_data, tmp_path_factory):
    """(warehouse, report, files): the whole real folder ingested once with 2 workers."""
    folder = real_data / "lamost"
    wh = tmp_path_factory.mktemp("real") / "w.duckdb"
    with open_warehouse(wh, command="test") as con:
        report = ingest_lamost(con, [folder], DEFAULT, workers=2)
    files, _ = expand_paths([folder])
    return wh, report, files


def rows(wh: Path, sql: str, params=None):
    con = connect(wh, read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def is_mrs(path: Path) -> bool:
    return path.name.startswith("med-")


def test_every_low_resolution_file_lands_and_the_mrs_file_is_refused(landed):
    wh, report, files = landed
    n_lrs = sum(not is_mrs(f) for f in files)
    assert len(files) - n_lrs == 1 and n_lrs == 293
    assert (report.files_loaded, report.rows_loaded, report.rejected) == (n_lrs, n_lrs, 1)
    assert rows(wh, "select count(*), count(distinct obsid) from landing.lamost_spectra") == [
        (n_lrs, n_lrs)]
    (reason,) = rows(wh, "select reason from meta.ingest_errors where severity = 'error'")[0]
    assert reason.startswith("medium-resolution (MRS) file refused")


def test_headers_match_astropy_for_every_file(landed):
    wh, _, files = landed
    by_file = {Path(r[0]).name: r[1:] for r in rows(
        wh, "select file, obsid, class, subclass, n_pixels, wave_min_aa, wave_max_aa, layout "
            "from landing.lamost_headers")}
    for f in files:
        if is_mrs(f):
            continue
        obsid, klass, subclass, n_pixels, wmin, wmax, layout = by_file[f.name]
        with fits.open(f) as h:
            hdr = h[0].header
            if layout == "coadd_table":
                wave = np.asarray(h["COADD"].data["WAVELENGTH"][0], float)
            elif layout == "dr1_pilot":
                wave = 10 ** (hdr["COEFF0"] + hdr["COEFF1"] * np.arange(hdr["NAXIS1"]))
            else:
                wave = np.asarray(h[0].data[2], float)
        assert klass == hdr["CLASS"].strip() and subclass == hdr["SUBCLASS"].strip(), f.name
        assert obsid == hdr["OBSID"] if "OBSID" in hdr else obsid < 0, f.name
        assert n_pixels == wave.size, f.name
        assert wmin == pytest.approx(wave[0], rel=1e-6) and wmax == pytest.approx(wave[-1],
                                                                                rel=1e-6), f.name
        assert 3650 < wmin < 3900 and 8700 < wmax < 9120, f.name  # LRS: ~3700-9100 AA


def test_real_sentinels_land_as_null_never_as_values(landed):
    """Z = -9999 (failed RV fit) and SNR* = -9999 in real files: NULL plus a warning row."""
    wh, _, files = landed
    got = {Path(r[0]).name: r[1:] for r in rows(
        wh, "select file, z, rv_kms, rv_source, snr_i from landing.lamost_headers")}
    warned = {Path(f).name for (f,) in rows(
        wh, "select file from meta.ingest_errors where severity = 'warning' "
            "and reason like 'sentinel or non-finite value(s) stored as NULL:%'")}
    n_z = n_snr = 0
    for f in files:
        if is_mrs(f):
            continue
        hdr = fits.getheader(f)
        z, rv, rv_source, snr_i = got[f.name]
        if hdr.get("Z") == -9999:
            n_z += 1
            assert (z, rv, rv_source) == (None, None, None) and f.name in warned, f.name
        elif hdr["CLASS"].strip() == "STAR":
            assert rv is not None and abs(rv) < 1e3, f.name     # km/s: a star's velocity
        if hdr.get("SNRI") == -9999:
            n_snr += 1
            assert snr_i is None and f.name in warned, f.name
    assert (n_z, n_snr) == (2, 1) and len(warned) == 3


def test_real_files_without_obsid_say_which_id_was_derived(landed):
    wh, _, _ = landed
    derived = rows(wh, "select h.obsid, h.designation, h.lmjd, h.planid, h.spid, h.fiberid, e.reason "
                       "from landing.lamost_headers h left join meta.ingest_errors e "
                       "on e.file = h.file and e.reason like 'no OBSID%' where h.obsid < 0")
    assert len(derived) == 61
    for obsid, *key, reason in derived:
        text = "|".join(map(str, key))
        assert obsid == stable_obsid(text)
        assert reason == (f"no OBSID: keyed by derived obsid {obsid} = hash of "
                          f"designation|lmjd|planid|spid|fiberid {text!r}")


def test_pilot_wavelengths_come_from_coeff0_coeff1(landed, real_data):
    wh, _, _ = landed
    pilots = rows(wh, "select file, loglam0, dloglam, data_v from landing.lamost_headers "
                      "join landing.lamost_spectra using (obsid) where layout = 'dr1_pilot'")
    assert len(pilots) >= 45
    for file, loglam0, dloglam, data_v in pilots:
        hdr = fits.getheader(file)
        assert (loglam0, dloglam) == (hdr["COEFF0"], hdr["COEFF1"])
        assert data_v == f"LAMOST pipeline v{hdr['VERSPIPE'].strip().lstrip('v')}"


def test_qso_is_kept_but_flagged_non_star(landed):
    wh, _, _ = landed
    flagged = rows(wh, "select class, is_star from landing.lamost_headers where class <> 'STAR'")
    assert ("QSO", False) in flagged and all(not s for _, s in flagged)
    assert rows(wh, "select is_star from landing.lamost_headers where subclass = 'dM5'") == [(True,)]


def test_spectra_read_back_equal_to_the_file_arrays(landed):
    wh, _, files = landed
    sample = [f for f in files if not is_mrs(f)][::37]
    for f in sample:
        flux, ivar = rows(wh, "select s.flux, s.ivar from landing.lamost_spectra s join "
                              "landing.lamost_headers h using (obsid) where h.file = ?", [str(f)])[0]
        with fits.open(f) as h:
            if "COADD" in h:
                want_flux, want_ivar = h["COADD"].data["FLUX"][0], h["COADD"].data["IVAR"][0]
            else:
                want_flux, want_ivar = h[0].data[0], h[0].data[1]
        ok = np.isfinite(want_flux) & np.isfinite(want_ivar)
        np.testing.assert_array_equal(np.array(flux, np.float32)[ok], want_flux[ok], err_msg=f.name)
        np.testing.assert_array_equal(np.array(ivar, np.float32)[ok],
                                      np.maximum(want_ivar[ok], 0), err_msg=f.name)


def test_spectra_per_data_release_can_be_counted(landed):
    wh, _, _ = landed
    counts = dict(rows(wh, "select data_v, count(*) from landing.lamost_headers group by 1"))
    assert counts["LAMOST DR8"] == 220 and sum(counts.values()) == 293
    assert all(v for v in counts)


def test_reingesting_the_real_folder_is_a_no_op(landed, real_data):
    wh, first, _ = landed
    with open_warehouse(wh, command="test") as con:
        again = ingest_lamost(con, [real_data / "lamost"], DEFAULT, workers=1)
    assert again.files_skipped == first.files_loaded and again.rows_loaded == 0
