"""Catalogue ingest: readers, column maps, casting, sentinels, rejections, idempotence."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from astropy.table import Table

from mgold.pipeline.config import DEFAULT
from mgold.pipeline.ingest import catalog
from mgold.pipeline.ingest.catalog import DOC_PATH, MissingColumnError, column_map_markdown, resolve_columns
from mgold.pipeline.ingest.catalog_maps import KINDS
from mgold.pipeline.warehouse import open_warehouse


def ingest_catalog(kind, paths, warehouse, cfg=None):
    """One `mgold ingest catalog` call: the warehouse opened (and locked) once around it."""
    with open_warehouse(warehouse, command="test ingest catalog") as con:
        return catalog.ingest_catalog(con, kind, paths, cfg)

GAIA_ROWS = {
    "source_id": [101, 102, 103, 104],
    "ra": [10.5, 20.25, 359.9, 0.01],
    "dec": [-5.0, 45.5, 89.0, -89.0],
    "parallax": [1.5, -9999.0, float("nan"), 3.25],
    "phot_g_mean_mag": [12.5, 99.0, 14.0, float("inf")],
}


def _write(path: Path, cols: dict) -> Path:
    """Same rows in the format named by the suffix."""
    table = Table(cols)
    name = path.name
    if name.endswith(".csv"):
        pcsv.write_csv(pa.table(cols), path)
    elif name.endswith(".parquet"):
        pq.write_table(pa.table(cols), path)
    elif name.endswith(".vot"):
        table.write(path, format="votable")
    else:
        table.write(path, format="fits")
    return path


def _rows(warehouse: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql).fetchall()


def _errors(warehouse: Path) -> list[tuple]:
    return _rows(warehouse, "select file, row, reason, severity from meta.ingest_errors order by file, row")


def test_column_map_doc_matches_generated_markdown():
    assert DOC_PATH.read_text() == column_map_markdown(), (
        "docs/catalog_maps.md drifted: run .venv/bin/python -m mgold.pipeline.ingest.catalog")


def test_resolve_prefers_exact_case_then_first_alias_case_insensitively():
    spec = KINDS["gaia"]
    m = resolve_columns(spec, ["GAIA_ID", "RA", "ra", "Dec", "plx"])
    assert m["source_id"] == "GAIA_ID"
    assert m["ra_deg"] == "ra"        # alias 'ra' comes first and matches exactly
    assert m["dec_deg"] == "Dec"      # case-insensitive
    assert m["parallax_mas"] == "plx"
    assert m["ruwe"] is None
    with pytest.raises(MissingColumnError, match=r"ra_deg.*tried ra, RA, ra_gaia"):
        resolve_columns(spec, ["source_id", "dec"])


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".vot", ".fits", ".fits.gz"])
def test_each_format_lands_the_same_table(tmp_path, suffix):
    ref_wh, wh = tmp_path / "ref.duckdb", tmp_path / "w.duckdb"
    ingest_catalog("gaia", [_write(tmp_path / "ref.parquet", GAIA_ROWS)], ref_wh)
    report = ingest_catalog("gaia", [_write(tmp_path / f"g{suffix}", GAIA_ROWS)], wh)
    assert (report.files_loaded, report.rows_loaded, report.rejected) == (1, 4, 0)
    sql = "select * exclude (_file) from landing.gaia order by _row"
    assert _rows(wh, sql) == _rows(ref_wh, sql)


def test_sentinels_nan_and_inf_become_null(tmp_path, warehouse):
    ingest_catalog("gaia", [_write(tmp_path / "g.csv", GAIA_ROWS)], warehouse)
    got = _rows(warehouse, "select source_id, parallax_mas, g_mag, ruwe from landing.gaia order by _row")
    assert got == [(101, 1.5, 12.5, None), (102, None, None, None),
                   (103, None, 14.0, None), (104, 3.25, None, None)]


def test_magnitude_sentinel_99_is_not_applied_to_other_columns(tmp_path, warehouse):
    rows = dict(GAIA_ROWS, parallax=[99.0, 1.0, 2.0, 3.0])
    ingest_catalog("gaia", [_write(tmp_path / "g.parquet", rows)], warehouse)
    assert _rows(warehouse, "select parallax_mas from landing.gaia where _row = 0") == [(99.0,)]


def test_uncastable_value_rejects_only_its_row(tmp_path, warehouse):
    path = tmp_path / "g.csv"
    path.write_text("source_id,ra,dec,parallax\n1,10,20,1.5\nabc,11,21,1.0\n3,12,22,oops\n4,13,23,2\n"
                    "5.5,14,24,2\n")
    report = ingest_catalog("gaia", [path], warehouse)
    assert (report.rows_loaded, report.rejected) == (2, 3)
    assert _rows(warehouse, "select source_id from landing.gaia order by _row") == [(1,), (4,)]
    errors = _errors(warehouse)
    assert [(e[1], e[3]) for e in errors] == [(1, "error"), (2, "error"), (4, "error")]
    assert "source_id" in errors[0][2] and "'abc'" in errors[0][2] and "BIGINT" in errors[0][2]
    assert "parallax_mas (source parallax)" in errors[1][2] and "'oops'" in errors[1][2]
    assert "'5.5'" in errors[2][2]   # ids never round silently
    assert all(e[0] == str(path) for e in errors)


def test_csv_line_that_cannot_be_split_rejects_only_that_row(tmp_path, warehouse):
    path = tmp_path / "g.csv"
    path.write_text("source_id,ra,dec\n1,10,20\n2,11\n3,12,22\n4,13,23,99\n5,14,24\n")
    cfg = DEFAULT.with_overrides(["ingest.catalog_batch_rows=2"])
    report = ingest_catalog("gaia", [path], warehouse, cfg)
    assert (report.rows_loaded, report.rejected) == (3, 2)
    assert _rows(warehouse, "select source_id, _row from landing.gaia order by _row") == [
        (1, 0), (3, 2), (5, 4)]
    assert [(row, "cannot be split" in reason) for _, row, reason, _ in _errors(warehouse)] == [
        (1, True), (3, True)]


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_invalid_utf8_line_rejects_only_that_row(tmp_path, warehouse, capsys, suffix):
    raw = (b"obsid,designation,ra,dec\n1,LAMOST J1,10,20\n2,LAMOST J\xff\xfe2,11,21\n3,ok,12,22\n"
           b"4,\xe9t\xe9\n5,ok,14,24\n6,LAMOST J6,15,25\n")  # line 5: Latin-1 and too few fields
    path = tmp_path / f"cat{suffix}"
    path.write_bytes(gzip.compress(raw) if suffix.endswith(".gz") else raw)
    cfg = DEFAULT.with_overrides(["ingest.catalog_batch_rows=2"])
    report = ingest_catalog("lamost_catalog", [path], warehouse, cfg)
    assert (report.files_loaded, report.rows_loaded, report.rejected) == (1, 4, 2)
    assert _rows(warehouse, "select obsid, _row from landing.lamost_catalog order by _row") == [
        (1, 0), (3, 2), (5, 4), (6, 5)]
    assert _errors(warehouse) == [
        (str(path), 1, "invalid UTF-8 (byte 0xff at byte 11 of line 3)", "error"),
        (str(path), 3, "invalid UTF-8 (byte 0xe9 at byte 3 of line 5)", "error")]
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Exception ignored" not in err
    assert f"{path}:1: invalid UTF-8" in err


def test_utf8_byte_order_mark_of_an_excel_export_is_accepted(tmp_path, warehouse):
    path = tmp_path / "excel.csv"
    path.write_text("obsid,ra,dec,class\n7,1.5,2.5,STAR\n", encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbfobsid")
    report = ingest_catalog("lamost_catalog", [path], warehouse)
    assert (report.files_loaded, report.rows_loaded, report.rejected) == (1, 1, 0)
    assert _rows(warehouse, "select obsid, ra_deg, class from landing.lamost_catalog") == [
        (7, 1.5, "STAR")]


def test_missing_required_column_rejects_file_and_other_files_land(tmp_path, warehouse, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("source_id,dec\n1,2\n")
    good = _write(tmp_path / "good.parquet", GAIA_ROWS)
    report = ingest_catalog("gaia", [bad, good], warehouse)
    assert (report.files_loaded, report.rows_loaded, report.rejected) == (1, 4, 1)
    (file, row, reason, severity), = _errors(warehouse)
    assert (file, row, severity) == (str(bad), None, "error")
    assert "ra_deg" in reason and "ra_gaia" in reason
    assert f"{bad}: missing required column ra_deg" in capsys.readouterr().err
    assert _rows(warehouse, "select kind, n_rows from meta.ingested_files") == [("gaia", 4)]


def test_duplicate_keys_keep_the_first_across_batches_and_files(tmp_path, warehouse):
    a = _write(tmp_path / "a.parquet", {"source_id": [1, 2, 1, 3, 2], "ra": [0.0, 1, 2, 3, 4],
                                        "dec": [0.0] * 5})
    b = _write(tmp_path / "b.parquet", {"source_id": [3, 9], "ra": [7.0, 8], "dec": [0.0, 0]})
    cfg = DEFAULT.with_overrides(["ingest.catalog_batch_rows=2"])
    report = ingest_catalog("gaia", [a, b], warehouse, cfg)
    assert (report.rows_loaded, report.rejected) == (4, 3)
    assert _rows(warehouse, "select source_id, ra_deg from landing.gaia order by source_id") == [
        (1, 0.0), (2, 1.0), (3, 3.0), (9, 8.0)]
    dups = [(Path(f).name, r) for f, r, reason, sev in _errors(warehouse) if "duplicate" in reason]
    assert dups == [("a.parquet", 2), ("a.parquet", 4), ("b.parquet", 0)]


def test_null_key_row_is_rejected(tmp_path, warehouse):
    path = tmp_path / "g.csv"
    path.write_text("source_id,ra,dec\n,1,2\n7,1,2\n")
    report = ingest_catalog("gaia", [path], warehouse)
    assert (report.rows_loaded, report.rejected) == (1, 1)
    assert "NULL key" in _errors(warehouse)[0][2]


def test_reingesting_the_same_file_is_a_noop(tmp_path, warehouse):
    path = _write(tmp_path / "g.fits", GAIA_ROWS)
    first = ingest_catalog("gaia", [path], warehouse)
    again = ingest_catalog("gaia", [path], warehouse)
    assert (first.files_loaded, again.files_loaded, again.files_skipped, again.rejected) == (1, 0, 1, 0)
    assert _rows(warehouse, "select count(*) from landing.gaia") == [(4,)]
    # the same file as another kind is a different ingest
    assert ingest_catalog("dust", [_write(tmp_path / "d.csv", {"source_id": [1], "av": [0.5]})],
                          warehouse).files_loaded == 1


def test_truncated_and_corrupt_files_are_rejected_and_the_rest_land(tmp_path, warehouse):
    big = {k: v * 500 for k, v in GAIA_ROWS.items()}
    big["source_id"] = list(range(len(big["ra"])))
    full = _write(tmp_path / "full.fits.gz", big)
    truncated = tmp_path / "truncated.fits.gz"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    plain = _write(tmp_path / "plain.fits", big)
    cut = tmp_path / "cut.fits"
    cut.write_bytes(plain.read_bytes()[:-2880])
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all")
    good = _write(tmp_path / "good.csv", GAIA_ROWS)
    report = ingest_catalog("gaia", [truncated, cut, garbage, tmp_path / "missing.csv", good],
                            warehouse)
    assert (report.files_loaded, report.rows_loaded, report.rejected) == (1, 4, 4)
    reasons = {Path(f).name: r for f, _, r, _ in _errors(warehouse)}
    assert set(reasons) == {"truncated.fits.gz", "cut.fits", "garbage.parquet", "missing.csv"}
    assert "truncated" in reasons["cut.fits"] and "truncated gzip" in reasons["truncated.fits.gz"]
    assert _rows(warehouse, "select count(*) from landing.gaia") == [(4,)]


def test_fits_tnull_integers_become_null(tmp_path, warehouse):
    from astropy.table import MaskedColumn

    t = Table({"APOGEE_ID": ["2M1", "2M2"], "TEFF": [3500.0, 3600.0], "LOGG": [4.8, 4.9],
               "M_H": [0.0, -0.1], "STARFLAG": MaskedColumn([4, 0], mask=[False, True], dtype=np.int32)})
    t.write(tmp_path / "allstar.fits")
    assert ingest_catalog("aspcap", [tmp_path / "allstar.fits"], warehouse).rows_loaded == 2
    assert _rows(warehouse, "select starflag from landing.aspcap order by _row") == [(4,), (None,)]


def test_model_sed_flux_stays_a_float32_list(tmp_path, warehouse):
    flux = np.arange(12, dtype=np.float32).reshape(2, 6) / 7
    cols = {"family": ["bt", "bt"], "teff": [3000.0, 3100.0], "logg": [5.0, 5.0], "mh": [0.0, 0.0],
            "loglam0": [3.5, 3.5], "dloglam": [1e-4, 1e-4]}
    parquet = tmp_path / "grid.parquet"
    pq.write_table(pa.table(dict(cols, flux=pa.array(flux.tolist(), pa.list_(pa.float32())))), parquet)
    fits = tmp_path / "grid.fits"
    Table(dict(cols, family=["ma", "ma"], flux=flux)).write(fits)
    report = ingest_catalog("model_sed_grid", [parquet, fits], warehouse)
    assert (report.rows_loaded, report.rejected) == (4, 0)
    got = _rows(warehouse, "select typeof(flux), flux from landing.model_sed_grid order by family, teff_k")
    assert {t for t, _ in got} == {"FLOAT[]"}
    for (_, f), want in zip(got, [*flux, *flux]):
        np.testing.assert_array_equal(np.array(f, np.float32), want)


def test_parsec_dat_reads_header_and_names_each_file(tmp_path, warehouse):
    header = "Zini Age Mini Mass logL logTe logg label Gmag G_BPmag G_RPmag"
    row = "0.0152 5.00e+08 0.09 0.09 -3.268 3.3748 5.111 0 14.966 18.148 13.594"
    old = tmp_path / "old" / "0.0MH.dat"
    new = tmp_path / "new" / "0.0MH.dat.gz"
    old.parent.mkdir(), new.parent.mkdir()
    old.write_text(f"# CMD output\n{header}\n{row}\n{row.replace('0.09 0.09', '0.1 0.1')}\n"
                   "0.0152 5e8 1 2\n#isochrone terminated\n")
    with gzip.open(new, "wt") as fh:   # newer CMD: header is a comment, repeated per isochrone
        fh.write(f"# {header}\n{row}\n# {header}\n{row.replace('5.00e+08', '1e9')}\n")
    report = ingest_catalog("isochrones", [tmp_path], warehouse)
    assert (report.files_loaded, report.rows_loaded, report.rejected) == (2, 4, 1)
    got = _rows(warehouse, "select source_name, age_yr, mini_msun, label, abs_g_mag "
                           "from landing.isochrones order by source_name, _row")
    assert got == [("new/0.0MH.dat.gz", 5e8, 0.09, 0, 14.966), ("new/0.0MH.dat.gz", 1e9, 0.09, 0, 14.966),
                   ("old/0.0MH.dat", 5e8, 0.09, 0, 14.966), ("old/0.0MH.dat", 5e8, 0.1, 0, 14.966)]
    assert _errors(warehouse)[0][1:3] == (2, "line has 4 fields, header has 11")


def test_cli_exits_3_when_anything_was_rejected(tmp_path, warehouse):
    from typer.testing import CliRunner

    from mgold.pipeline.cli import app

    bad = tmp_path / "bad.csv"
    bad.write_text("source_id,ra,dec\nx,1,2\n")
    result = CliRunner().invoke(app, ["ingest", "catalog", "gaia", str(bad),
                                      str(_write(tmp_path / "g.csv", GAIA_ROWS)), "-w", str(warehouse)])
    assert result.exit_code == 3, result.output
    assert "2 file(s) loaded, 4 row(s)" in result.output


# --- real fixtures (../shared/data/real) ------------------------------------------------

@pytest.mark.real
def test_real_apogee_allstar_as_aspcap(real_data, warehouse):
    path = real_data / "catalogs" / "apogee_dr14_x_gaia_dr2_mann2015_mdwarfs.fits.gz"
    report = ingest_catalog("aspcap", [path], warehouse)
    assert (report.rows_loaded, report.rejected) == (73, 0)
    n, n_logg, n_teff, teff_min, flag_type, n_flagged = _rows(warehouse, """
        select count(*), count(logg_dex), count(teff_k), min(teff_k), typeof(any_value(starflag)),
               count(*) filter (where starflag <> 0 or aspcapflag <> 0) from landing.aspcap""")[0]
    assert (n, n_logg, flag_type) == (73, 0, "BIGINT")   # LOGG is -9999 for every row
    assert 0 < n_teff < 73 and teff_min > 2000           # TEFF_2 -9999 -> NULL, not a number
    assert n_flagged > 0
    assert _rows(warehouse, "select count(*) from landing.aspcap where apogee_id not like '2M%'") == [(0,)]


@pytest.mark.real
@pytest.mark.parametrize("name, n_rows, n_ruwe", [
    ("apogee_dr14_x_gaia_dr2_mann2015_mdwarfs.fits.gz", 73, 0),   # Gaia DR2: no RUWE column
    ("birky2020_apogee_mdwarfs_gaia_dr2.fits.gz", 14827, 0),      # GAIA_ID / PLX / G_MAG aliases
    ("gaia_lamost_larger_velocity_features.csv", 1838, 1838),     # ra_gaia / dec_gaia aliases
])
def test_real_gaia_layouts(real_data, warehouse, name, n_rows, n_ruwe):
    report = ingest_catalog("gaia", [real_data / "catalogs" / name], warehouse)
    assert (report.files_loaded, report.rows_loaded, report.rejected) == (1, n_rows, 0)
    n, n_ok, n_plx, got_ruwe = _rows(warehouse, """
        select count(*), count(*) filter (where source_id > 0 and ra_deg between 0 and 360
                                          and dec_deg between -90 and 90),
               count(parallax_mas), count(ruwe) from landing.gaia""")[0]
    assert (n, n_ok, got_ruwe) == (n_rows, n_rows, n_ruwe)
    assert n_plx > 0.9 * n_rows
    g_min, g_max = _rows(warehouse, "select min(g_mag), max(g_mag) from landing.gaia")[0]
    assert 3 < g_min < g_max < 22      # 99 / -9999 sentinels never reach the table


@pytest.mark.real
def test_real_lamost_catalogue_csvs(real_data, warehouse):
    cat = real_data / "catalogs"
    chemo, velocity = cat / "gaia_lamost_chemo_kinematic_features.csv", cat / "gaia_lamost_larger_velocity_features.csv"
    report = ingest_catalog("lamost_catalog", [velocity, chemo], warehouse)
    assert report.files_loaded == 2
    got = dict((Path(f).name, rest) for f, *rest in _rows(warehouse, """
        select _file, count(*), count(designation), count(planid), count(lmjd), count(snr_g),
               count(*) filter (where class = 'STAR') from landing.lamost_catalog group by 1"""))
    assert got["gaia_lamost_larger_velocity_features.csv"][:4] == [1838, 0, 1838, 1838]
    n_chemo, n_desig, _, _, n_snrg, _ = got["gaia_lamost_chemo_kinematic_features.csv"]
    assert n_chemo + report.rejected == 138 and n_desig == n_chemo == n_snrg


@pytest.mark.real
def test_real_parsec_isochrones(real_data, warehouse):
    folder = real_data / "isochrones"
    files = sorted(folder.rglob("*.dat"))
    report = ingest_catalog("isochrones", [folder], warehouse)
    assert (report.files_loaded, report.rejected) == (len(files), 0)
    n_names, n, n_null_g, ages = _rows(warehouse, """
        select count(distinct source_name), count(*), count(*) - count(abs_g_mag),
               list(distinct age_yr order by age_yr) from landing.isochrones""")[0]
    assert n_names == len(files)
    assert n == sum(1 for f in files for line in f.open() if line.strip() and line.split()[0][0].isdigit())
    assert n_null_g == 0
    assert min(ages) >= 1e8 and max(ages) <= 1e10 and all(not math.isnan(a) for a in ages)
