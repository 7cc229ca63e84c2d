"""The golden-sample FITS / Parquet product: written here, read back with plain astropy / pyarrow."""

from __future__ import annotations

import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from mgold.pipeline import export

LOGLAM0, DLOGLAM = 3.778151250383644, 1e-4      # the red grid (6000 AA) at LAMOST sampling
UNITS = {"teff_k": "K", "logg_dex": "dex", "mh_dex": "dex", "ra_deg": "deg", "snr_i": ""}


def _product(n: int = 6, npx: int = 50):
    rng = np.random.default_rng(4)
    flux = rng.normal(1.0, 0.1, (n, npx)).astype(np.float32)
    flux[0, 0] = np.float32(1e-40)                       # subnormals and negative zero survive
    flux[1, 1] = np.float32(-0.0)
    flux[3, 3] = np.nan                                   # a NaN pixel keeps its bits too
    flux[3, 4] = np.inf
    ivar = rng.uniform(10, 1000, (n, npx)).astype(np.float32)
    ivar[2, 5:9] = 0.0                                    # bad pixels
    cat = pa.table({
        "obsid": pa.array(np.arange(n) + 101000000, pa.int64()),
        "designation": pa.array(["J000001.00+000001.0"] + [f"J0{i}" for i in range(1, n - 1)] + [None]),
        "gaia_source_id": pa.array([None] + list(range(2, n + 1)), pa.int64()),
        "bin_id": pa.array(range(n), pa.int32()),
        "n_visits": pa.array([1, None] + [3] * (n - 2), pa.int16()),
        "ra_deg": pa.array(rng.uniform(0, 360, n)),
        "teff_k": pa.array([3512.25, None] + [3600.0 + i for i in range(n - 2)]),
        "logg_dex": pa.array(rng.uniform(4, 5, n).astype(np.float32), pa.float32()),
        "mh_dex": pa.array(rng.uniform(-1, 0.5, n)),
        "snr_i": pa.array(rng.uniform(10, 100, n)),
        "is_giant": pa.array([True, False] * (n // 2)),
        "offsets_applied": pa.array([[87.0, 0.0, -0.1]] * (n - 1) + [None], pa.list_(pa.float64(), 3)),
        "loo_resid": pa.array([[1.5]] * n, pa.list_(pa.float32(), 1)),
        "visit_count3": pa.array([[1, 2, 3]] * n, pa.list_(pa.int32(), 3)),
    })
    return flux, ivar, cat


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).astype(np.dtype(np.float32).newbyteorder("=")).view(np.uint32)


@pytest.fixture()
def written(tmp_path):
    flux, ivar, cat = _product()
    with warnings.catch_warnings():
        warnings.simplefilter("error")                   # no truncated header comments, no astropy fix-ups
        path = export.write_golden_fits(tmp_path / "golden.fits", flux, ivar, LOGLAM0, DLOGLAM, cat, UNITS,
                                        flux_unit="relative flux", header={"RUN_ID": ("r42", "mgold run")})
    return path, flux, ivar, cat


def test_fits_spectra_round_trip_bit_identical_through_plain_astropy(written):
    path, flux, ivar, _ = written
    with warnings.catch_warnings():
        warnings.simplefilter("error")                   # a failed checksum is only a warning in astropy
        with fits.open(path, checksum=True) as hdul:
            assert [h.name for h in hdul] == ["PRIMARY", "IVAR", "WAVELENGTH", "CATALOG"]
            for h in hdul:
                assert h.verify_checksum() == 1 and h.verify_datasum() == 1
            assert hdul[0].data.shape == (6, 50) and hdul[0].header["NAXIS1"] == 50
            assert np.array_equal(_bits(hdul[0].data), _bits(flux))      # spectra in the first HDU
            assert np.array_equal(_bits(hdul["IVAR"].data), _bits(ivar))
            h = hdul[0].header
            assert (h["CRVAL1"], h["CDELT1"], h["CRPIX1"], h["DC-FLAG"]) == (LOGLAM0, DLOGLAM, 1, 1)
            assert (h["COEFF0"], h["COEFF1"], h["CTYPE1"], h["VACUUM"]) == (LOGLAM0, DLOGLAM, "LINEAR", True)
            assert h["RUN_ID"] == "r42" and h["BUNIT"] == "relative flux"
            wave = hdul["WAVELENGTH"].data
            np.testing.assert_array_equal(wave, 10 ** (LOGLAM0 + DLOGLAM * np.arange(50)))
            assert 5999.0 < wave[0] < 6001.0


def test_fits_wcs_gives_the_wavelength_grid(written):
    from astropy.wcs import WCS

    path, *_ = written
    with fits.open(path) as hdul:
        with warnings.catch_warnings():
            warnings.simplefilter("error")              # no CDi_j / CDELTi conflict warnings
            w = WCS(hdul[0].header)
        loglam = w.pixel_to_world_values(np.arange(50), np.zeros(50))[0]
        np.testing.assert_allclose(10 ** loglam, hdul["WAVELENGTH"].data, rtol=1e-14)


def test_fits_catalogue_values_round_trip_with_documented_nulls(written):
    path, _, _, cat = written
    with fits.open(path) as hdul:
        d, cols = hdul["CATALOG"].data, hdul["CATALOG"].columns
        assert list(d["obsid"]) == cat["obsid"].to_pylist()
        assert cols["gaia_source_id"].null == np.iinfo(np.int64).min and d["gaia_source_id"][0] == np.iinfo(np.int64).min
        assert np.isnan(d["teff_k"][1]) and d["teff_k"][0] == 3512.25      # NULL float -> NaN
        assert d["designation"][5] == "" and d["designation"][0] == "J000001.00+000001.0"
        assert cols["teff_k"].unit == "K" and cols["ra_deg"].unit == "deg" and cols["obsid"].unit is None
        assert d["offsets_applied"].shape == (6, 3) and np.isnan(d["offsets_applied"][5]).all()
    back = export.read_golden_fits(path)
    assert back.catalog.schema == cat.schema
    assert back.catalog.equals(cat)                      # values, types and NULLs, every column
    assert back.units == {k: v for k, v in UNITS.items() if v}
    assert (back.loglam0, back.dloglam, back.flux_unit) == (LOGLAM0, DLOGLAM, "relative flux")


def test_parquet_carries_the_same_content_as_the_fits(written, tmp_path):
    path, flux, ivar, cat = written
    pq_path = export.write_golden_parquet(tmp_path / "golden.parquet", flux, ivar, LOGLAM0, DLOGLAM, cat, UNITS,
                                          flux_unit="relative flux")
    t = pq.read_table(pq_path)                           # plain pyarrow
    assert t.schema.field("flux").type == pa.list_(pa.float32(), 50)
    assert np.array_equal(_bits(t["ivar"].combine_chunks().values.to_numpy().reshape(6, 50)), _bits(ivar))
    assert float(t.schema.metadata[b"mgold.loglam0"]) == LOGLAM0
    assert t.schema.field("teff_k").metadata == {b"unit": b"K"}
    a, b = export.read_golden_fits(path), export.read_golden_parquet(pq_path)
    for x, y in ((a.flux, b.flux), (a.ivar, b.ivar), (a.flux, flux)):
        assert np.array_equal(_bits(x), _bits(y))
    assert b.catalog.equals(cat) and a.catalog.equals(b.catalog)
    assert (a.loglam0, a.dloglam, a.units, a.flux_unit) == (b.loglam0, b.dloglam, b.units, b.flux_unit)
    np.testing.assert_array_equal(a.wavelength_aa, b.wavelength_aa)


def test_a_corrupted_fits_is_refused_by_its_checksum(written):
    path, *_ = written
    raw = bytearray(path.read_bytes())
    raw[2880 + 100] ^= 0x01                              # one bit inside the first data block
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="golden.fits: .*[Cc]hecksum"):
        export.read_golden_fits(path)


def test_an_existing_file_is_kept_unless_overwrite(written):
    path, flux, ivar, cat = written
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="golden.fits exists"):
        export.write_golden_fits(path, flux, ivar, LOGLAM0, DLOGLAM, cat, UNITS)
    assert path.read_bytes() == before
    export.write_golden_fits(path, flux[:2], ivar[:2], LOGLAM0, DLOGLAM, cat.slice(0, 2), UNITS, overwrite=True)
    assert export.read_golden_fits(path).flux.shape == (2, 50)
    assert sorted(p.name for p in path.parent.iterdir()) == ["golden.fits"]     # no temporary left


def test_a_failed_write_leaves_no_file(tmp_path):
    flux, ivar, cat = _product()
    bad = cat.append_column("when", pa.array([None] * 6, pa.timestamp("s")))
    with pytest.raises(ValueError, match="'when' has type timestamp"):
        export.write_golden_fits(tmp_path / "g.fits", flux, ivar, LOGLAM0, DLOGLAM, bad, UNITS)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("change, message", [
    (lambda f, i, c, u: (f.astype(np.float64), i, c, u), "flux must be float32"),
    (lambda f, i, c, u: (f, i[:, :10], c, u), "differs from ivar shape"),
    (lambda f, i, c, u: (f, i, c.slice(0, 3), u), "3 rows for 6 spectra"),
    (lambda f, i, c, u: (f, i, c, {**u, "nope": "K"}), "units given for column.*nope"),
    (lambda f, i, c, u: (f, i, c.append_column("OBSID", pa.array(range(6))), u), "'obsid' repeats"),
    (lambda f, i, c, u: (f, i, c.append_column("flag", pa.array([True, None] * 3)), u),
     "'flag' row 1: NULL in a bool column"),
    (lambda f, i, c, u: (f, i, c.append_column("name", pa.array(["a", "b", "é", "d", "e", "f"])), u),
     "'name' row 2: non-ASCII"),
    (lambda f, i, c, u: (f, i, c.append_column("name", pa.array(["a", "b ", "c", "d", "e", "f"])), u),
     "'name' row 1: trailing blanks"),
    (lambda f, i, c, u: (f, i, c.append_column("k", pa.array([1, np.iinfo(np.int64).min, 1, 1, 1, 1])), u),
     "'k' row 1: value -9223372036854775808 is the FITS NULL marker"),
])
def test_inputs_the_product_cannot_carry_exactly_are_refused(tmp_path, change, message):
    flux, ivar, cat, units = change(*_product(), dict(UNITS))
    with pytest.raises(ValueError, match=message):
        export.write_golden_fits(tmp_path / "g.fits", flux, ivar, LOGLAM0, DLOGLAM, cat, units)


def test_parquet_refuses_a_catalogue_column_named_like_the_spectra(tmp_path):
    flux, ivar, cat = _product()
    with pytest.raises(ValueError, match="'flux' clashes"):
        export.write_golden_parquet(tmp_path / "g.parquet", flux, ivar, LOGLAM0, DLOGLAM,
                                    cat.append_column("flux", pa.array(range(6))), UNITS)


def test_an_empty_sample_round_trips(tmp_path):
    flux, ivar, cat = _product()
    p = export.write_golden_fits(tmp_path / "e.fits", flux[:0], ivar[:0], LOGLAM0, DLOGLAM, cat.slice(0, 0), UNITS)
    back = export.read_golden_fits(p)
    assert back.flux.shape[0] == 0 and back.catalog.num_rows == 0 and back.catalog.schema == cat.schema


# --------------------------------------------------------------------------- mgold export golden

def _golden_warehouse(path, n=5, npx=40):
    """A warehouse file holding gold_sample (with NULL LOO columns and an int flag) and both grids."""
    import duckdb

    from mgold.pipeline.runner import ensure_meta

    rng = np.random.default_rng(8)
    con = duckdb.connect(str(path))
    ensure_meta(con)
    con.execute(f"""create table gold_sample as
        select (100 + i)::bigint obsid, 'J' || i designation, 10.0::double * i ra_deg, -5.0::double + i dec_deg,
               (9000 + i)::bigint source_id, 'dwarf' class, 3500.0::double + i teff_k, 4.7::double logg_dex,
               -0.1::double * i mh_dex,
               'ding22' label_source, -30.5::double offset_teff_k, 0.0::double offset_logg_dex,
               0.01::double offset_mh_dex,
               false is_supplement, 40.0::double + i snr_i, 't3500_g4.70_m0.00' bin_id, 'dbscan' kept_by,
               case when i = 0 then null else 3501.0::double + i end teff_loo_k,
               case when i = 0 then null else 1.0::double end dteff_loo_k, (i % 2)::integer loo_flags
        from range({n}) t(i)""")
    grids = {}
    for table, l0 in (("spc_cluster_grid", 3.591064607026499), ("spc_red_grid", 3.778151250383644)):
        flux = rng.normal(1, 0.1, (n, npx)).astype(np.float32)
        ivar = rng.uniform(1, 100, (n, npx)).astype(np.float32)
        ivar[1, :3] = 0
        con.register("s", pa.table({"obsid": np.arange(100, 100 + n)[::-1].copy(), "loglam0": [l0] * n,
                                    "dloglam": [1e-4] * n,
                                    "flux": pa.FixedSizeListArray.from_arrays(pa.array(flux[::-1].ravel()), npx),
                                    "ivar": pa.FixedSizeListArray.from_arrays(pa.array(ivar[::-1].ravel()), npx)}))
        con.execute(f"create table {table} as select * from s")     # rows in reverse obsid order
        grids[table] = (l0, flux, ivar)
    cat = con.sql("select * from gold_sample order by obsid").to_arrow_table()
    con.close()
    return grids, cat


def test_export_golden_round_trips_through_the_cli(tmp_path):
    from typer.testing import CliRunner

    from mgold.pipeline.cli import app

    wh = tmp_path / "w.duckdb"
    grids, cat = _golden_warehouse(wh)
    out_f, out_p = tmp_path / "golden.fits", tmp_path / "golden.parquet"
    r = CliRunner().invoke(app, ["export", "golden", "-w", str(wh), "--fits", str(out_f), "--parquet", str(out_p)])
    assert r.exit_code == 0, r.output
    assert "wrote" in r.output and "5 spectra x 40 pixels" in r.output
    l0, flux, ivar = grids["spc_cluster_grid"]                  # the default grid, in obsid order
    for product in (export.read_golden_fits(out_f), export.read_golden_parquet(out_p)):
        assert product.catalog.equals(cat)
        np.testing.assert_array_equal(_bits(product.flux), _bits(flux))
        np.testing.assert_array_equal(_bits(product.ivar), _bits(ivar))
        assert product.loglam0 == l0 and product.dloglam == 1e-4
        assert product.units["teff_k"] == "K" and product.units["ra_deg"] == "deg" and "obsid" not in product.units
    with fits.open(out_f) as h:                                 # plain astropy: spectra in the first HDU
        assert h[0].data.shape == (5, 40) and h[0].header["NSTARS"] == 5 and h[0].header["GRID"] == "cluster"
        assert h["CATALOG"].columns["teff_k"].unit == "K"
    r = CliRunner().invoke(app, ["export", "golden", "-w", str(wh), "--parquet", str(out_p), "--grid", "red",
                                 "--overwrite"])
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(export.read_golden_parquet(out_p).flux, grids["spc_red_grid"][1])


def test_export_golden_fails_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from mgold.pipeline.cli import app

    wh = tmp_path / "w.duckdb"
    _golden_warehouse(wh)
    run = CliRunner().invoke
    r = run(app, ["export", "golden", "-w", str(wh)])
    assert r.exit_code == 2 and "give --fits PATH and/or --parquet PATH" in r.output
    (tmp_path / "x.fits").write_bytes(b"")
    r = run(app, ["export", "golden", "-w", str(wh), "--fits", str(tmp_path / "x.fits")])
    assert r.exit_code == 2 and "exists" in r.output and len(r.output.strip().splitlines()) == 1
    r = run(app, ["export", "golden", "-w", str(wh), "--fits", str(tmp_path / "y.fits"), "--grid", "blue"])
    assert r.exit_code == 1 and "unknown grid 'blue'" in r.output
    import duckdb

    con = duckdb.connect(str(wh))
    con.execute("delete from spc_cluster_grid where obsid = 102")
    con.close()
    r = run(app, ["export", "golden", "-w", str(wh), "--fits", str(tmp_path / "y.fits")])
    assert r.exit_code == 1 and "obsid 102 has no row in spc_cluster_grid" in r.output
    assert not (tmp_path / "y.fits").exists()
    r = run(app, ["export", "golden", "-w", str(tmp_path / "none.duckdb"), "--fits", str(tmp_path / "z.fits")])
    assert r.exit_code == 1 and "no warehouse" in r.output
