"""`make` end to end on a small universe: layout, determinism, overrides, truth, real formats."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from mgold.pipeline.ingest.catalog_maps import KINDS
from mgold.pipeline.synth.make import make
from mgold.pipeline.synth.truth import load_truth
from mgold.pipeline.synth.presets import PRESETS, config_for

SMALL = ["synth.n_stars=150", "synth.spectra_per_file=100"]


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def universe(tmp_path_factory):
    out = tmp_path_factory.mktemp("u")
    make(config_for("tiny", seed=11, sets=SMALL + ["synth.aspcap.dwarf.teff_k=500",
                                                   "synth.ding22.dwarf.mh_dex=-0.4"]), out)
    return out


def test_manifest_lists_every_file_with_its_kind(universe):
    m = json.loads((universe / "manifest.json").read_text())
    assert m["preset"] == "tiny" and m["seed"] == 11 and m["format"] == "parquet"
    assert m["config"]["synth.aspcap.dwarf.teff_k"] == 500.0
    kinds = {f["kind"] for f in m["files"]}
    assert kinds == {"lamost"} | (set(KINDS) - {"isochrones"})
    for rel in [f["path"] for f in m["files"]] + m["truth"]:
        assert (universe / rel).is_file(), rel


def test_catalog_columns_map_through_the_contract(universe):
    m = json.loads((universe / "manifest.json").read_text())
    for f in m["files"]:
        if f["kind"] == "lamost":
            continue
        p = universe / f["path"]
        names = Table.read(p).colnames if p.suffix == ".fits" else \
            [r[0] for r in duckdb.connect().execute(f"describe select * from '{p}'").fetchall()]
        lower = {n.lower() for n in names}
        missing = [c.name for c in KINDS[f["kind"]].columns if c.required
                   and not any(a.lower() in lower for a in c.aliases)]
        assert not missing, (f["kind"], missing)


def test_spectra_rows_have_the_agreed_columns(universe):
    cols = [r[0] for r in duckdb.connect().execute(f"describe select * from '{universe}/lamost/*.parquet'").fetchall()]
    assert cols[:3] == ["obsid", "designation", "ra_deg"]
    assert cols[-5:] == ["loglam0", "dloglam", "flux", "ivar", "pixmask"]
    n, n_pix, low = duckdb.connect().execute(f"select count(*), min(len(flux)), avg((snr_i < 10)::int) "
                                             f"from '{universe}/lamost/*.parquet'").fetchone()
    assert n > 150 and n_pix == 3909 and 0.02 < low < 0.6         # some fall below the S/N cut


def test_cli_overrides_reach_the_catalogues(universe):
    con = duckdb.connect()
    load_truth(con, universe)
    a = Table.read(universe / "catalogs/allStar-dr17-synspec_rev1.fits")
    stars = con.execute("select source_id, class, teff_k from truth.stars").fetchall()
    by_sid = {r[0]: r for r in stars}
    d = [row["TEFF"] - by_sid[row["GAIAEDR3_SOURCE_ID"]][2] for row in a
         if row["TEFF"] > 0 and by_sid[row["GAIAEDR3_SOURCE_ID"]][1] == "dwarf"]
    assert abs(np.median(d) - 500) < 40
    ding = con.execute(f"""
        select median(c."[M/H]" - s.mh_dex) from read_csv('{universe}/catalogs/ding22_mdwarfs.csv') c
        join truth.spectra t on t.obsid = c.obsid
        join truth.stars s on s.star_id = t.labels_of_star_id""").fetchone()[0]
    assert abs(ding + 0.4) < 0.05


def test_truth_tables_load_and_describe_every_spectrum(universe):
    con = duckdb.connect()
    load_truth(con, universe)
    n_spec = con.execute(f"select count(*) from '{universe}/lamost/*.parquet'").fetchone()[0]
    assert con.execute("select count(*) from truth.spectra").fetchone()[0] == n_spec
    assert con.execute("select count(*) from truth.stars").fetchone()[0] == 150
    off = con.execute("select offset_value from truth.injected_offsets where catalog='aspcap' and class='dwarf' "
                      "and param='teff_k'").fetchone()[0]
    assert off == 500.0


def test_same_seed_and_preset_give_byte_identical_files(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((a, 3), (b, 3), (c, 4)):
        make(config_for("tiny", seed=seed, sets=["synth.n_stars=60"]), out)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


@pytest.mark.slow
def test_fits_layout_is_byte_stable_and_like_dr9(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        make(config_for("tiny", seed=3, sets=["synth.n_stars=20"]), out, fmt="fits")
    da = {k: v for k, v in _digest(a).items() if k.startswith("lamost/")}
    assert da and da == {k: v for k, v in _digest(b).items() if k.startswith("lamost/")}
    with fits.open(a / next(iter(da))) as h:
        assert h[0].header["OBSID"] > 0 and "SNRI" in h[0].header and "DATE" not in h[0].header
        assert h[1].name == "COADD" and h[1].columns.names == ["FLUX", "IVAR", "WAVELENGTH", "ANDMASK",
                                                              "ORMASK", "NORMALIZATION"]


@pytest.mark.real
def test_fits_layout_matches_a_real_dr13_file(tmp_path, real_data):
    make(config_for("tiny", seed=3, sets=["synth.n_stars=5"]), tmp_path, fmt="fits")
    ours = next(tmp_path.rglob("spec-*.fits"))
    real = real_data / "lamost/dr9_dr13_table_format/spec-60591-LN042429N340750BM01_sp01-004.fits.gz"
    with fits.open(ours) as o, fits.open(real) as r:
        assert [c.name for c in o[1].columns] == [c.name for c in r[1].columns]
        assert [c.format for c in o[1].columns] == [c.format for c in r[1].columns]
        for key in ("OBSID", "DESIG", "RA", "DEC", "CLASS", "SUBCLASS", "Z", "Z_ERR", "SNRU", "SNRI",
                    "LMJD", "MJD", "PLANID", "SPID", "FIBERID", "DATA_V", "COEFF0", "COEFF1"):
            assert key in o[0].header and key in r[0].header, key


@pytest.mark.slow
def test_both_formats_give_identical_landing_tables(tmp_path):
    from mgold.pipeline.config import DEFAULT
    from mgold.pipeline.ingest.lamost import ingest_lamost
    from mgold.pipeline.warehouse import connect, open_warehouse

    ignore = {"file", "file_sha256", "run_id", "layout", "rv_source"}   # provenance, not content
    got = []
    for fmt in ("fits", "parquet"):
        out = tmp_path / fmt
        make(config_for("tiny", seed=8, sets=["synth.n_stars=40"]), out, fmt=fmt)
        w = tmp_path / f"{fmt}.duckdb"
        with open_warehouse(w, command="test") as con:
            report = ingest_lamost(con, [out / "lamost"], DEFAULT, workers=1)
        assert report.rejected == 0
        con = connect(w, read_only=True)
        cols = [r[0] for r in con.execute("describe landing.lamost_headers").fetchall() if r[0] not in ignore]
        got.append((con.execute(f"select {', '.join(cols)} from landing.lamost_headers order by obsid").fetchall(),
                    con.execute("select obsid, loglam0, dloglam, flux, ivar, pixmask from landing.lamost_spectra "
                                "order by obsid").fetchall()))
        con.close()
    assert len(got[0][0]) > 40
    assert got[0][0] == got[1][0]
    assert got[0][1] == got[1][1]


def test_failed_rv_visits_carry_the_sentinel_in_both_formats_and_truth_keeps_the_rv(tmp_path):
    cfg = config_for("tiny", seed=3, sets=["synth.n_stars=8", "synth.rv_failure_rate=0.5"])
    for fmt in ("parquet", "fits"):
        make(cfg, tmp_path / fmt, fmt=fmt)
    con = duckdb.connect()
    rows = con.execute(f"select obsid, z, z_err, rv_kms from '{tmp_path}/parquet/lamost/*.parquet'").fetchall()
    failed = {o for o, z, *_ in rows if z == -9999}
    assert failed and len(failed) < len(rows)
    assert all((z_err, rv) == (-9999, -9999) for o, z, z_err, rv in rows if o in failed)
    fits_failed = set()
    for path in (tmp_path / "fits" / "lamost").rglob("*.fits"):
        hdr = fits.getheader(path)
        if hdr["Z"] == -9999:
            assert hdr["Z_ERR"] == -9999
            fits_failed.add(hdr["OBSID"])
    assert fits_failed == failed
    truth = dict(((o, (t, r)) for o, t, r in con.execute(
        f"select obsid, rv_true_kms, rv_reported_kms from '{tmp_path}/parquet/truth/spectra.parquet'").fetchall()))
    assert all(abs(truth[o][0]) < 1000 and truth[o][1] == -9999 for o in failed)
    catalog = dict(con.execute(
        f"select obsid, rv from read_csv('{tmp_path}/parquet/catalogs/lamost_dr11_lrs_mstars.csv')").fetchall())
    assert {o for o, rv in catalog.items() if rv == -9999} == failed


def test_ingest_of_a_universe_with_rv_failures_nulls_them_with_warnings(tmp_path):
    from mgold.pipeline.config import DEFAULT
    from mgold.pipeline.ingest.lamost import ingest_lamost
    from mgold.pipeline.warehouse import connect, open_warehouse

    make(config_for("tiny", seed=3, sets=["synth.n_stars=30", "synth.rv_failure_rate=0.2"]), tmp_path / "u")
    w = tmp_path / "w.duckdb"
    with open_warehouse(w, command="test") as con:
        report = ingest_lamost(con, [tmp_path / "u" / "lamost"], DEFAULT, workers=1)
    assert report.rejected == 0
    con = connect(w, read_only=True)
    n_null, n_warn = con.execute("""
        select (select count(*) from landing.lamost_headers where rv_kms is null and z is null),
               (select count(*) from meta.ingest_errors where severity = 'warning'
                and reason like '%column z = -9999, column z_err = -9999, column rv_kms = -9999%')""").fetchone()
    con.close()
    truth = duckdb.connect().execute(
        f"select count(*) from '{tmp_path}/u/truth/spectra.parquet' where rv_reported_kms = -9999").fetchone()[0]
    assert n_null == n_warn == truth > 0


def test_presets_scale_up_and_unknown_preset_is_refused():
    sizes = [config_for(p).synth.n_stars for p in ("tiny", "demo", "paper")]
    assert sizes == sorted(sizes) and config_for("dr11").synth.n_dr11_spectra > 100_000
    assert set(PRESETS) == {"tiny", "demo", "paper", "dr11"}
    with pytest.raises(KeyError, match="unknown synth preset"):
        config_for("huge")


def test_dr11_preset_plans_about_900k_spectra_without_generating_them():
    from mgold.pipeline.synth.stars import _mean_repeat_visits, n_extra_stars
    s = config_for("dr11").synth
    mean_visits = 1.0 + s.repeat_fraction * (_mean_repeat_visits(s) - 1.0)
    planned = (s.n_stars + n_extra_stars(s)) * mean_visits
    assert 800_000 < planned < 1_000_000
