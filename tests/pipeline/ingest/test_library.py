"""Reference libraries (`mgold ingest library`): vacuum, R ~ 1800, red grid, masks, labels, replace."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from astropy.io import fits
from scipy.ndimage import gaussian_filter1d
from scipy.optimize import curve_fit

from mgold.pipeline.config import DEFAULT
from mgold.pipeline.ingest import library as lib
from mgold.pipeline.stages.spectra import grid
from mgold.pipeline.warehouse import connect

WAVE = lib.red_grid_wave_aa(DEFAULT)
R = DEFAULT.library.resolving_power
SNR = DEFAULT.library.assumed_snr


def _air_to_vac_edlen(wave_air_aa):
    """Reference twin: Edlen (1966) refractive index of standard air, iterated from vacuum."""
    wave_air_aa = np.asarray(wave_air_aa, float)
    vac = wave_air_aa.copy()
    for _ in range(3):
        s2 = (1e4 / vac) ** 2
        n = 1.0 + 8.34213e-5 + 2.406030e-2 / (130.0 - s2) + 1.5997e-4 / (38.9 - s2)
        vac = wave_air_aa * n
    return vac


def _gauss_line(wave, centre, fwhm, depth=0.5):
    return 1.0 - depth * np.exp(-0.5 * ((wave - centre) / (fwhm / 2.354820045)) ** 2)


def _write_star(folder: Path, sid: int, flux: np.ndarray, crval: float = 6300.5, cdelt: float = 0.9,
                fwhm: float | None = 2.5) -> Path:
    hdu = fits.PrimaryHDU(np.asarray(flux, np.float64))
    hdu.header["CRPIX1"], hdu.header["CRVAL1"], hdu.header["CDELT1"] = 1, crval, cdelt
    if fwhm is not None:
        hdu.header["FWHM"] = fwhm
    path = folder / f"MILES_res2.50_star_m{sid:04d}V.fits"
    hdu.writeto(path)
    return path


def _air_wave(n: int, crval: float = 6300.5, cdelt: float = 0.9) -> np.ndarray:
    return crval + cdelt * np.arange(n)


def _write_labels(folder: Path, rows: list[str]) -> Path:
    path = folder / lib.MILES_LABEL_FILE
    path.write_text("#MILES  Teff  log g   [Fe/H]\n#s????\n" + "\n".join(rows) + "\n")
    return path


def _library(folder: Path, n_pix: int = 1000) -> Path:
    """Three stars: a dwarf, a giant, one with [Fe/H] 9999; one unparseable label row."""
    folder.mkdir(parents=True, exist_ok=True)
    wave = _air_wave(n_pix)
    for sid, slope in ((10, 0.0), (20, 1e-4), (30, -1e-4)):
        _write_star(folder, sid, (1.0 + slope * (wave - 6700.0)) * _gauss_line(wave, 6800.0, 2.5))
    _write_labels(folder, ["  0010  3500   4.80    -0.20", "  0020  4100   1.50     0.10",
                           "  0030  3300   0.50     9999", "  022.  7950   3.95     0.35"])
    return folder


def _ingest(warehouse: Path, paths, cfg=DEFAULT, name: str = "miles"):
    con = connect(warehouse)
    try:
        return lib.ingest_library(con, name, [Path(p) for p in paths], cfg)
    finally:
        con.close()


def _rows(warehouse: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql).fetchall()


def _fit_line(wave, flux, centre):
    """(centre, FWHM) of a Gaussian absorption line on a linear continuum."""
    def model(x, a, b, d, mu, s):
        return (a + b * (x - centre)) * (1.0 - d * np.exp(-0.5 * ((x - mu) / s) ** 2))

    win = np.abs(wave - centre) < 15.0
    p, _ = curve_fit(model, wave[win], flux[win], p0=[1.0, 0.0, 0.3, centre, 1.5])
    return p[3], 2.354820045 * abs(p[4])


# --- the spectrum path ------------------------------------------------------------------------
def test_line_lands_at_its_vacuum_wavelength_with_lamost_resolution():
    wave_air = _air_wave(1000)
    flux, ivar = lib.red_grid_spectrum(lib.air_to_vac_aa(wave_air), _gauss_line(wave_air, 6800.0, 2.5),
                                       2.5, DEFAULT)
    good = ivar > 0
    centre, fwhm = _fit_line(WAVE[good], flux[good], 6800.0 + 1.9)
    vac = _air_to_vac_edlen(6800.0)
    assert abs(centre - vac) < 0.05, (centre, vac)          # vacuum, not air (1.88 Å apart)
    assert fwhm == pytest.approx(vac / R, rel=0.02)          # FWHM_out = lambda / R


def test_air_to_vac_matches_an_independent_edlen_formula():
    wave = np.linspace(3540.0, 7410.0, 50)
    assert np.max(np.abs(lib.air_to_vac_aa(wave) - _air_to_vac_edlen(wave))) < 0.01


def test_pixels_beyond_the_library_coverage_are_masked_never_extrapolated():
    wave_air = _air_wave(1000)                      # 6300.5-7199.6 Å air
    wave_vac = lib.air_to_vac_aa(wave_air)
    flux, ivar = lib.red_grid_spectrum(wave_vac, np.ones(1000), 2.5, DEFAULT)
    edge = DEFAULT.library.edge_lsf_sigmas / R / 2.3548
    half = 10 ** (0.5 * DEFAULT.spectra.dloglam)
    inside = (WAVE / half >= wave_vac[0] * (1 + edge)) & (WAVE * half <= wave_vac[-1] * (1 - edge))
    assert inside.sum() > 500
    assert np.all(ivar[~inside] == 0) and np.all(flux[~inside] == 0)
    assert np.all(ivar[inside] > 0) and np.allclose(flux[inside], 1.0)


def test_a_bad_input_pixel_masks_only_the_pixels_its_kernel_reaches():
    wave_air = _air_wave(1000)
    raw = np.ones(1000)
    raw[500] = np.nan                               # 6750.5 Å air
    raw[700] = -1.0                                 # flux <= 0 is bad too
    flux, ivar = lib.red_grid_spectrum(lib.air_to_vac_aa(wave_air), raw, 2.5, DEFAULT)
    assert np.all(np.isfinite(flux)) and np.all(np.isfinite(ivar))
    masked = WAVE[(ivar == 0) & (WAVE > 6400) & (WAVE < 7100)]
    vac_bad = lib.air_to_vac_aa(wave_air[[500, 700]])
    assert masked.size > 0
    assert np.min(np.abs(masked[:, None] - vac_bad[None, :]), axis=1).max() < 12.0
    assert np.allclose(flux[ivar > 0], 1.0)         # the kernel renormalises over good pixels


def test_noise_model_gives_the_assumed_snr_at_the_median_flux():
    raw = np.linspace(2.0, 6.0, 101)
    flux, ivar = lib.noise_model(raw, np.ones(101, bool), 80.0)
    assert np.median(flux) == pytest.approx(1.0)
    assert flux[50] * math.sqrt(ivar[50]) == pytest.approx(80.0, rel=1e-6)
    np.testing.assert_allclose(ivar, 80.0 ** 2 / flux, rtol=1e-6)   # photon noise: var = flux / snr^2


def test_noise_model_without_a_usable_pixel_is_all_masked():
    flux, ivar = lib.noise_model(np.array([0.0, -1.0, np.nan]), np.ones(3, bool), 100.0)
    assert not flux.any() and not ivar.any()


# --- ingest -----------------------------------------------------------------------------------
def test_every_star_lands_with_labels_class_and_the_table_schema(tmp_path, warehouse):
    report = _ingest(warehouse, [_library(tmp_path / "miles")])
    assert (report.rows_loaded, report.files_loaded, report.rejected) == (3, 4, 1)
    rows = _rows(warehouse, "select template_id, name, teff_k, logg_dex, mh_dex, class, snr, n_pix, "
                            "n_good_pix from landing.library_spectra order by template_id")
    n = grid(DEFAULT, "red")[2]
    assert [r[:6] for r in rows] == [(10, "m0010", 3500.0, 4.8, -0.2, "dwarf"),
                                     (20, "m0020", 4100.0, 1.5, 0.1, "giant"),
                                     (30, "m0030", 3300.0, 0.5, None, "giant")]
    assert all(r[6] == SNR and r[7] == n and 0 < r[8] < n for r in rows)
    types = dict(_rows(warehouse, "select column_name, data_type from information_schema.columns "
                                  "where table_name = 'library_spectra' order by ordinal_position"))
    assert types == {k: v.upper() for k, v in lib.library_columns(DEFAULT).items()}


def test_missing_label_is_a_warning_and_an_unparseable_row_an_error_with_its_line(tmp_path, warehouse):
    _ingest(warehouse, [_library(tmp_path / "miles")])
    errors = _rows(warehouse, "select file, row, reason, severity from meta.ingest_errors order by severity")
    assert len(errors) == 2
    (efile, erow, ereason, _), (wfile, wrow, wreason, _) = errors
    assert efile.endswith(lib.MILES_LABEL_FILE) and erow == 6 and "022." in ereason
    assert wfile.endswith("m0030V.fits") and wrow is None
    assert "mh_dex" in wreason and "cannot use it as a template" in wreason


def test_a_bad_file_is_rejected_and_the_rest_lands(tmp_path, warehouse):
    folder = _library(tmp_path / "miles")
    (folder / "MILES_res2.50_star_m0040V.fits").write_bytes(b"not a fits file at all")
    hdu = fits.PrimaryHDU(np.ones(100))               # no wavelength scale
    hdu.writeto(folder / "MILES_res2.50_star_m0050V.fits")
    _write_star(folder, 60, np.ones(200), crval=3600.0)   # entirely blue of the red grid
    report = _ingest(warehouse, [folder])
    assert report.rows_loaded == 3 and report.rejected == 4
    reasons = dict(_rows(warehouse, "select regexp_extract(file, 'm00[0-9]0', 0), reason "
                                    "from meta.ingest_errors where severity = 'error' and file like '%.fits'"))
    assert set(reasons) == {"m0040", "m0050", "m0060"}
    assert "CRVAL1" in reasons["m0050"] and "no usable pixel" in reasons["m0060"]
    landed = {r[0] for r in _rows(warehouse, "select file from meta.ingested_files")}
    assert not any("m0040" in f or "m0050" in f or "m0060" in f for f in landed)


def test_reingest_replaces_the_library_and_another_name_adds_rows(tmp_path, warehouse, monkeypatch):
    folder = _library(tmp_path / "miles")
    _ingest(warehouse, [folder])
    (folder / "MILES_res2.50_star_m0020V.fits").unlink()
    report = _ingest(warehouse, [folder])
    assert report.rows_loaded == 2
    assert _rows(warehouse, "select name from landing.library_spectra order by 1") == [("m0010",), ("m0030",)]
    files = _rows(warehouse, "select count(*), count(distinct run_id) from meta.ingested_files "
                             "where kind = 'library_miles'")
    assert files == [(3, 1)]                          # the label file + 2 stars, from the new run only

    monkeypatch.setitem(lib.LIBRARIES, "miles_b", lib.LibraryKind("miles_b", "test copy",
                                                                  lib.LIBRARIES["miles"].patterns, lib.read_miles))
    _ingest(warehouse, [folder], name="miles_b")
    assert _rows(warehouse, "select library, count(*) from landing.library_spectra group by 1 order by 1") \
        == [("miles", 2), ("miles_b", 2)]


def test_reingest_with_other_labels_replaces_values_not_adds(tmp_path, warehouse):
    folder = _library(tmp_path / "miles")
    _ingest(warehouse, [folder])
    _write_labels(folder, ["  0010  3600   4.70    -0.10"])
    _ingest(warehouse, [folder])
    rows = _rows(warehouse, "select name, teff_k from landing.library_spectra order by 1")
    assert rows == [("m0010", 3600.0), ("m0020", None), ("m0030", None)]


def test_a_red_grid_clash_leaves_other_libraries_untouched(tmp_path, warehouse, monkeypatch):
    folder = _library(tmp_path / "miles")
    monkeypatch.setitem(lib.LIBRARIES, "miles_b", lib.LibraryKind("miles_b", "test copy",
                                                                  lib.LIBRARIES["miles"].patterns, lib.read_miles))
    _ingest(warehouse, [folder], name="miles_b")
    before = _rows(warehouse, "select * from landing.library_spectra order by template_id")
    other = DEFAULT.with_overrides({"spectra.red_wave_max_aa": 8000.0})
    with pytest.raises(ValueError, match="miles_b on a .*-pixel red grid"):
        _ingest(warehouse, [folder], cfg=other)
    assert _rows(warehouse, "select * from landing.library_spectra order by template_id") == before
    # the only library on the old grid may change it: its table is rebuilt
    _ingest(warehouse, [folder], cfg=other, name="miles_b")
    assert _rows(warehouse, "select distinct n_pix from landing.library_spectra") == [(grid(other, "red")[2],)]


def test_same_file_twice_is_skipped_and_a_repeated_star_rejected(tmp_path, warehouse):
    folder = _library(tmp_path / "miles")
    copy = tmp_path / "copy" / "MILES_res2.50_star_m0010V.fits"
    copy.parent.mkdir()
    wave = _air_wave(1000)
    _write_star(copy.parent, 10, 2.0 * _gauss_line(wave, 6800.0, 2.5))
    star = folder / "MILES_res2.50_star_m0010V.fits"
    report = _ingest(warehouse, [folder, star, copy])
    assert report.files_skipped == 1 and report.rows_loaded == 3
    assert any("m0010 again" in r[0] for r in _rows(warehouse, "select reason from meta.ingest_errors"))


def test_a_reader_repeating_a_template_id_keeps_the_first(tmp_path, warehouse, monkeypatch):
    wave = lib.air_to_vac_aa(_air_wave(1000))

    def twins(files, out):
        for k, path in enumerate(files):
            out.files.append((str(k), path, 1))
            yield lib.LibraryStar(7, f"star{k}", (3500.0, 4.8, 0.0), wave, np.full(1000, 1.0 + k), 2.5, path)

    monkeypatch.setitem(lib.LIBRARIES, "twins", lib.LibraryKind("twins", "test", ("*.txt",), twins))
    for k in range(2):
        (tmp_path / f"{k}.txt").write_text("x")
    report = _ingest(warehouse, [tmp_path], name="twins")
    assert (report.rows_loaded, report.rejected, report.files_loaded) == (1, 1, 1)
    assert _rows(warehouse, "select name from landing.library_spectra") == [("star0",)]


def test_no_readable_star_leaves_the_table_as_it_was(tmp_path, warehouse):
    folder = _library(tmp_path / "miles")
    _ingest(warehouse, [folder])
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "MILES_res2.50_star_m0099V.fits").write_bytes(b"junk")
    report = _ingest(warehouse, [broken])
    assert report.rows_loaded == 0 and report.rejected >= 1
    assert _rows(warehouse, "select count(*) from landing.library_spectra") == [(3,)]


def test_unknown_library_is_refused():
    with pytest.raises(ValueError, match="unknown library 'pickles'"):
        lib.ingest_library(None, "pickles", [], DEFAULT)


# --- CLI --------------------------------------------------------------------------------------
def test_cli_exits_3_on_a_rejected_row_and_2_on_an_unknown_kind(tmp_path, warehouse):
    from typer.testing import CliRunner

    from mgold.pipeline.cli import app

    folder = _library(tmp_path / "miles")
    result = CliRunner().invoke(app, ["ingest", "library", "miles", str(folder), "-w", str(warehouse)])
    assert result.exit_code == 3, result.output
    assert "4 file(s) loaded, 3 row(s)" in result.output
    result = CliRunner().invoke(app, ["ingest", "library", "pickles", str(folder), "-w", str(warehouse)])
    assert result.exit_code == 2 and "choose one of miles" in result.output


def test_cli_help_names_every_library_kind():
    import typer.main

    from mgold.pipeline.cli import app

    cmd = typer.main.get_command(app).commands["ingest"].commands["library"]
    kind_help = next(p.help for p in cmd.params if p.name == "kind")
    assert all(k in kind_help for k in lib.LIBRARIES)


# --- model-SED grid as a library --------------------------------------------------------------
def _smooth_sed(wave):
    return (wave / 7000.0) ** 2 * (1.0 + 0.1 * np.sin(wave / 50.0))


def _sed_nodes() -> pa.Table:
    loglam0, dloglam, n = 3.5682, 1e-4, 3909          # the LAMOST grid of landing.model_sed_grid
    wave = 10 ** (loglam0 + dloglam * np.arange(n))
    rows = [("marcs_like", 3800.0, 1.0, 0.0, wave ** -1.0), ("bt_settl_like", 3300.0, 5.0, -0.5, _smooth_sed(wave))]
    short = ("bt_settl_like", 3200.0, 5.0, 0.0, wave[:3000] ** 0.5)       # ends at 7389 Å
    flux = [r[4].astype(np.float32) for r in rows] + [short[4].astype(np.float32)]
    meta = rows + [short]
    return pa.table({"family": [m[0] for m in meta], "teff_k": [m[1] for m in meta],
                     "logg_dex": [m[2] for m in meta], "mh_dex": [m[3] for m in meta],
                     "loglam0": [loglam0] * 3, "dloglam": [dloglam] * 3,
                     "flux": pa.array([f.tolist() for f in flux], pa.list_(pa.float32()))})


def test_model_grid_library_has_the_library_columns_ordered_ids_and_masks():
    out = lib.model_grid_library(_sed_nodes(), DEFAULT)
    con = duckdb.connect()
    con.execute("create table t (" + ", ".join(f'"{c}" {t}' for c, t in lib.library_columns(DEFAULT).items()) + ")")
    con.register("out", out)
    con.execute("insert into t select * from out")
    rows = con.execute("select library, template_id, name, class from t order by template_id").fetchall()
    assert rows == [("model_grid", 0, "bt_settl_like:3200/5/0", "dwarf"),
                    ("model_grid", 1, "bt_settl_like:3300/5/-0.5", "dwarf"),
                    ("model_grid", 2, "marcs_like:3800/1/0", "giant")]
    flux = np.array(out["flux"].to_pylist(), float)
    ivar = np.array(out["ivar"].to_pylist(), float)
    assert np.all(ivar[1:] > 0)
    assert np.all(ivar[0][WAVE > 7390.0] == 0) and np.all(flux[0][WAVE > 7390.0] == 0)
    # reference twin: the smooth SED interpolated at the pixel centres, median-normalised
    twin = _smooth_sed(WAVE)
    np.testing.assert_allclose(flux[1], twin / np.median(twin), rtol=2e-3)


# --- real MILES (../shared/data/real) ----------------------------------------------------------
@pytest.fixture(scope="module")
def miles_warehouse(tmp_path_factory, request):
    real = request.getfixturevalue("real_data")
    folder = real / lib.MILES_DIR
    if not folder.is_dir():
        pytest.skip(f"MILES library not found at {folder}")
    wh = tmp_path_factory.mktemp("miles") / "w.duckdb"
    report = _ingest(wh, [folder])
    return wh, folder, report


def _reference_labels(path: Path) -> dict[str, tuple]:
    """Slow, obvious parse of MILES_params.db: 9999 / 99999 -> None, unparseable rows skipped."""
    out = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if line.startswith("#") or len(parts) != 4 or not parts[0].isdigit():
            continue
        out["m" + parts[0]] = tuple(None if float(p) in (9999.0, 99999.0) else float(p) for p in parts[1:])
    return out


@pytest.mark.real
def test_real_every_parseable_miles_star_lands_with_its_labels(miles_warehouse):
    wh, folder, report = miles_warehouse
    files = sorted(folder.glob("*.fits"))
    labels = _reference_labels(folder / lib.MILES_LABEL_FILE)
    rows = _rows(wh, "select name, teff_k, logg_dex, mh_dex, class from landing.library_spectra order by name")
    assert [r[0] for r in rows] == sorted(lib.miles_star_id(f) for f in files)
    assert len(rows) == 488
    assert all(labels[name] == (t, g, m) for name, t, g, m, _ in rows)
    assert all(c == ("dwarf" if g >= 3.5 else "giant") for _, _, g, _, c in rows)
    warned = _rows(wh, "select count(*) from meta.ingest_errors where severity = 'warning'")[0][0]
    assert warned == sum(None in (t, g, m) for _, t, g, m, _ in rows) > 0
    assert report.rejected == 1                       # the '022.' label row


@pytest.mark.real
def test_real_miles_is_masked_beyond_7410_aa_and_clean_inside(miles_warehouse):
    wh, _, _ = miles_warehouse
    ivar = np.array([r[0] for r in _rows(wh, "select ivar from landing.library_spectra")], float)
    flux = np.array([r[0] for r in _rows(wh, "select flux from landing.library_spectra")], float)
    assert np.all(ivar[:, WAVE > 7410.0] == 0) and np.all(flux[:, WAVE > 7410.0] == 0)
    assert np.all(ivar[:, WAVE < 7400.0] > 0)
    assert np.all(np.isfinite(flux)) and np.allclose(np.nanmedian(np.where(ivar > 0, flux, np.nan), axis=1),
                                                     1.0, atol=0.3)


@pytest.mark.real
def test_real_h_alpha_moves_by_the_air_to_vacuum_shift(miles_warehouse):
    wh, folder, _ = miles_warehouse
    rows = _rows(wh, "select name, flux from landing.library_spectra where teff_k between 4300 and 5300 "
                     "order by name")

    def centroid(wave, flux, centre):
        side = (np.abs(wave - centre) > 8.0) & (np.abs(wave - centre) < 15.0)
        cont = np.polyval(np.polyfit(wave[side], flux[side], 1), wave)
        core = np.abs(wave - centre) < 3.0
        depth = 1.0 - flux[core] / cont[core]
        return (wave[core] * depth).sum() / depth.sum()

    shifts, vac = [], []
    for name, flux in rows:
        wave_air, raw, _ = lib.read_miles_spectrum(folder / f"MILES_res2.50_star_{name}V.fits")
        vac.append(centroid(WAVE, np.asarray(flux), 6564.6))
        shifts.append(vac[-1] - centroid(wave_air, raw, 6562.8))
    expected = _air_to_vac_edlen(6562.80) - 6562.80      # 1.81 Å
    assert len(rows) > 200
    assert abs(np.median(shifts) - expected) < 0.1
    assert abs(np.median(vac) - _air_to_vac_edlen(6562.80)) < 0.3


@pytest.mark.real
def test_real_spectrum_matches_an_independent_degradation_to_r_1800(miles_warehouse):
    wh, folder, _ = miles_warehouse
    name, flux = _rows(wh, "select name, flux from landing.library_spectra where name = 'm0010'")[0]
    flux = np.asarray(flux, float)
    wave_air, raw, fwhm_in = lib.read_miles_spectrum(folder / f"MILES_res2.50_star_{name}V.fits")
    for centre in (6300.0, 6564.0, 7000.0):
        # reference twin: constant-sigma scipy filter, valid locally around `centre`
        sigma_pix = math.sqrt((centre / R) ** 2 - fwhm_in ** 2) / 2.354820045 / 0.9
        ref = np.interp(WAVE, _air_to_vac_edlen(wave_air), gaussian_filter1d(raw, sigma_pix))
        win = np.abs(WAVE - centre) < 40.0
        ratio = flux[win] / ref[win]
        assert np.std(ratio / ratio.mean()) < 2e-3, centre
        undegraded = np.interp(WAVE, _air_to_vac_edlen(wave_air), raw)[win]
        assert np.std(flux[win] / undegraded / np.mean(flux[win] / undegraded)) > 3 * np.std(ratio / ratio.mean())
