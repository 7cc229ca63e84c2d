"""`mgold inspect` end to end through typer's CliRunner, on a warehouse of literal rows."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest
from typer.testing import CliRunner

from mgold.pipeline.cli import app
from mgold.pipeline.config import DEFAULT
from mgold.pipeline.runner import bind_config, build_models

from cleanrows import clean_layer

NPIX = 120
CFG = DEFAULT.with_overrides({"clean.dist_ref_pix": NPIX})


@pytest.fixture()
def wh(tmp_path):
    """A warehouse with two bins: 6 alike spectra + 1 outlier, and a single-sample bin."""
    path = tmp_path / "w.duckdb"
    rng = np.random.default_rng(1)
    base = 1 + 0.2 * np.cos(np.linspace(0, 9, NPIX))
    flux = base * (1 + 0.003 * rng.standard_normal((8, NPIX)))
    flux[6, 30:60] += 0.5
    labelled = duckdb.sql("select (200 + i)::bigint obsid, i::bigint source_id, 'dwarf' class, "
                          "case when i < 7 then 3560.0 else 3660.0 end teff_k, 4.72 logg_dex, -0.35 mh_dex, "
                          "(10 + i)::double snr_i, 'aspcap' label_source from range(8) t(i)").to_arrow_table()
    con = clean_layer(duckdb.connect(str(path)), labelled, flux, np.full((8, NPIX), 0.003 ** -2), CFG, 3.5911,
                      rv_kms=-20.0)
    con.close()
    return path


def test_list_shows_the_single_sample_bin(wh):
    r = CliRunner().invoke(app, ["inspect", "list", "-w", str(wh)])
    assert r.exit_code == 0, r.output
    assert "t3650_g4.70_m-0.40" in r.output and "single_sample" in r.output
    assert "t3550_g4.70_m-0.40" not in r.output
    assert "1 bin(s)" in r.output


def test_show_writes_a_png_of_the_bin(wh, tmp_path):
    out = tmp_path / "bin.png"
    r = CliRunner().invoke(app, ["inspect", "show", "t3550_g4.70_m-0.40", "-w", str(wh), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_decide_is_stored_and_respected_by_cln_kept(wh):
    r = CliRunner().invoke(app, ["inspect", "decide", "t3650_g4.70_m-0.40", "-w", str(wh), "--keep", "207",
                                 "--note", "looks fine"])
    assert r.exit_code == 0, r.output
    con = duckdb.connect(str(wh))
    bind_config(con, CFG)
    assert con.execute("select bin_id, obsid, decision, note from landing.inspection_decisions").fetchall() == \
        [("t3650_g4.70_m-0.40", 207, "keep", "looks fine")]
    assert con.execute("select n_rows from meta.ingested_files where kind = 'inspection_decisions'").fetchone()[0] == 1
    build_models(con, ["cln_decisions", "cln_kept"], CFG)
    kept = con.execute("select obsid, kept_by from cln_kept where obsid = 207").fetchall()
    assert kept == [(207, "inspection")]
    con.close()


def test_bad_requests_fail_with_one_line(wh, tmp_path):
    r = CliRunner().invoke(app, ["inspect", "decide", "t3650_g4.70_m-0.40", "-w", str(wh), "--keep", "200"])
    assert r.exit_code == 1 and "obsid 200 is not in bin t3650_g4.70_m-0.40" in r.output
    r = CliRunner().invoke(app, ["inspect", "show", "t0_g0.00_m0.00", "-w", str(wh), "--out", str(tmp_path / "x.png")])
    assert r.exit_code == 1 and "no bin" in r.output
    r = CliRunner().invoke(app, ["inspect", "decide", "t3650_g4.70_m-0.40", "-w", str(wh)])
    assert r.exit_code == 2


def test_eps_figure_shows_the_populated_bin_at_two_eps(wh, tmp_path):
    out = tmp_path / "fig6.png"
    r = CliRunner().invoke(app, ["inspect", "figure", "-w", str(wh), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "bin t3550_g4.70_m-0.40: 7 spectra" in r.output and "eps 2:" in r.output
    assert out.stat().st_size > 10_000


@pytest.mark.parametrize("cmd", ["list", "show", "decide", "accept-suggestions", "figure"])
def test_every_inspect_command_has_help_with_an_example(cmd):
    r = CliRunner().invoke(app, ["inspect", cmd, "--help"])
    assert r.exit_code == 0 and "Example: mgold inspect" in r.output


def test_report_clean_says_in_one_line_what_is_missing(wh, tmp_path):
    r = CliRunner().invoke(app, ["report", "clean", "-w", str(wh)])
    assert r.exit_code == 1 and "no truth tables" in r.output and len(r.output.strip().splitlines()) == 1
    bare = tmp_path / "bare.duckdb"
    duckdb.connect(str(bare)).close()
    r = CliRunner().invoke(app, ["report", "clean", "-w", str(bare)])
    assert r.exit_code == 1 and "clean layer not built" in r.output
    r = CliRunner().invoke(app, ["report", "clean", "-w", str(tmp_path / "none.duckdb")])
    assert r.exit_code == 1 and "no warehouse" in r.output


def test_report_clean_has_help_with_an_example():
    r = CliRunner().invoke(app, ["report", "clean", "--help"])
    assert r.exit_code == 0 and "Example: mgold report clean" in r.output


@pytest.mark.slow
def test_report_clean_prints_the_accuracy_figures_of_a_synthetic_build(tiny_build):
    tiny = tiny_build.warehouse
    r = CliRunner().invoke(app, ["report", "clean", "-w", str(tiny)])
    assert r.exit_code == 0, r.output
    for text in ("defect recall", "wrong_rv", "clean eligible spectra accepted", "noise-free ceiling",
                 "noise sd of D^2", "cln_kept rows"):
        assert text in r.output
