"""`mgold report html`: the page as a person sees it (headless Chromium), and its parts on literal rows.

Chromium comes from Debian's `chromium` package (`.ci/setup-chromium` installs it where missing);
the browser test skips with the reason when it cannot be found or started.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import numpy as np
import pytest
from typer.testing import CliRunner

from mgold.pipeline.cli import app
from mgold.pipeline.config import DEFAULT
from mgold.pipeline.evaluate import figures as F
from mgold.pipeline.evaluate.figures import FIGURES, Figure
from mgold.pipeline.evaluate.html import (HEADLINES, NOT_BUILT, Headline, headline_rows, relation_state,
                                          render, unmet)
from mgold.pipeline.warehouse import connect, open_warehouse

DRAWN_ON_TINY = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 18, 19, 20)   # every figure of the paper
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars")
# written into a copy of index.html: the page itself has no JavaScript
PROBE = """<script>addEventListener('load', () => {
  document.body.setAttribute('data-images', JSON.stringify([...document.images].map(
      i => [i.getAttribute('src'), i.complete, i.naturalWidth])));
  const t = document.getElementById('headline');
  document.body.setAttribute('data-headline-rows', t ? t.tBodies[0].rows.length : -1);
});</script>"""


def chromium_or_skip(tmp_path: Path) -> list[str]:
    exe = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    if exe is None:
        pytest.skip("no Chromium on this machine (bash .ci/setup-chromium installs Debian's chromium)")
    cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]
    try:
        probe = subprocess.run([*cmd, "--dump-dom", "about:blank"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"Chromium at {exe} cannot start: {e}")
    if probe.returncode != 0 or "<html" not in probe.stdout:
        pytest.skip(f"Chromium at {exe} cannot start: {probe.stderr.strip().splitlines()[-1:]}")
    return cmd


def browse(cmd: list[str], page: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*cmd, "--virtual-time-budget=15000", *args, page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_report_renders_every_built_figure_and_chromium_loads_them(tiny_build, tmp_path):
    out = tmp_path / "report"
    res = CliRunner().invoke(app, ["report", "html", "-w", str(tiny_build.warehouse), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert f"wrote {out / 'index.html'}" in res.output
    assert f"{len(DRAWN_ON_TINY)} of {len(FIGURES)} figures drawn" in res.output
    assert "accuracy: labels, clean" in res.output
    page = (out / "index.html").read_text()
    assert "<script" not in page.lower()
    for n in DRAWN_ON_TINY:
        assert (out / f"fig{n:02d}.png").stat().st_size > 5000, n
        assert f'src="fig{n:02d}.png"' in page
    # the figures of stages not written yet are cards, not holes
    assert page.count(f"{NOT_BUILT}: needs") == 0
    assert "45,422" in page and "≈ +87 K" in page and "+87 injected" in page

    cmd = chromium_or_skip(tmp_path)
    check = out / "check.html"
    check.write_text(page.replace("</body>", PROBE + "</body>"))
    dom = browse(cmd, check, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    images = json.loads(re.search(r'data-images="([^"]*)"', dom.stdout).group(1).replace("&quot;", '"'))
    assert len(images) == len(DRAWN_ON_TINY)
    assert all(done and width > 0 for _, done, width in images), images
    n_rows = int(re.search(r'data-headline-rows="(-?\d+)"', dom.stdout).group(1))
    assert n_rows == len(HEADLINES)
    for name, size in (("laptop.png", "1280,2400"), ("phone.png", "412,2400")):
        shot = browse(cmd, out / "index.html", f"--window-size={size}", f"--screenshot={out / name}")
        assert shot.returncode == 0 and (out / name).stat().st_size > 20_000, shot.stderr[-2000:]


def test_a_bare_warehouse_renders_a_page_of_not_built_cards(tmp_path):
    con = connect(tmp_path / "w.duckdb")
    rep = render(con, tmp_path / "report")
    con.close()
    assert all(s.startswith(NOT_BUILT) for s in rep.figures.values()), rep.figures
    assert not list((tmp_path / "report").glob("*.png"))
    assert {r.mgold for r in rep.headline} == {NOT_BUILT}
    assert rep.accuracy == ["no truth tables"]
    page = rep.index.read_text()
    assert page.count("run `mgold build`") == len(FIGURES) and 'id="headline"' in page


def test_a_failing_figure_is_a_card_with_its_cause_and_the_cli_exits_1(tmp_path, monkeypatch):
    wh = tmp_path / "w.duckdb"
    con = connect(wh)
    con.execute("create table t as select 1 as x")

    def broken(con, cfg, out):
        raise ZeroDivisionError("the bin is empty")

    figs = (Figure(1, "fine", lambda con, cfg, out: None, ("t",)), Figure(2, "broken", broken, ("t",)),
            Figure(3, "later", None, ("gold_* (golden stage)",)))
    rep = render(con, tmp_path / "r", figures=figs, accuracy=False)
    con.close()
    assert rep.figures[1].startswith("nothing to draw")
    assert rep.failed == {2: "failed: ZeroDivisionError: the bin is empty"}
    assert rep.figures[3] == f"{NOT_BUILT}: needs gold_* (golden stage); run `mgold build`"
    assert "failed: ZeroDivisionError: the bin is empty" in rep.index.read_text()

    import mgold.pipeline.evaluate.html as H

    monkeypatch.setattr(H, "FIGURES", figs)
    res = CliRunner().invoke(app, ["report", "html", "-w", str(wh), "--out", str(tmp_path / "cli")])
    assert res.exit_code == 1 and (tmp_path / "cli" / "index.html").exists()
    assert "mgold: error: Fig. 2: failed: ZeroDivisionError: the bin is empty" in res.output


def test_report_html_without_a_warehouse_fails_in_one_line(tmp_path):
    res = CliRunner().invoke(app, ["report", "html", "-w", str(tmp_path / "none.duckdb"), "--out", str(tmp_path)])
    assert res.exit_code == 1 and res.output.strip().count("\n") == 0 and "no warehouse at" in res.output


def test_relation_state_tells_missing_empty_and_unreadable_apart(tmp_path):
    con = duckdb.connect()
    con.execute("create table full_t as select 1 as x")
    con.execute("create table empty_t (x int)")
    pq = tmp_path / "gone.parquet"
    con.execute(f"copy (select 1 as x) to '{pq}'")
    con.execute(f"create view over_files as select * from '{pq}'")
    pq.unlink()
    con.execute("create schema landing")
    con.execute("create table landing.isochrones as select 1 as x")
    assert relation_state(con, "full_t") is None and relation_state(con, "landing.isochrones") is None
    assert relation_state(con, "empty_t") == "empty"
    assert relation_state(con, "nope") == "missing" and relation_state(con, "landing.nope") == "missing"
    assert relation_state(con, "gold_* (golden stage)") == "missing"
    assert relation_state(con, "over_files").startswith("unreadable: ")
    assert unmet(con, ("full_t", "empty_t")) == ["empty_t (empty)"]


def test_headline_counts_come_from_the_warehouse_and_missing_stages_say_not_built(tmp_path):
    con = duckdb.connect()
    con.execute("""create table lbl_labelled_sample as select * from (values
        (1, 'aspcap', false), (2, 'ding22', false), (3, 'ding22', false), (4, 'aspcap', true)) t(source_id,
        label_source, is_supplement)""")
    rows = {r.quantity: r for r in headline_rows(con)}
    assert rows["labelled sample, total"].mgold == "4" and rows["labelled sample, total"].paper == "45,422"
    assert rows["labelled from ASPCAP"].mgold == "2" and rows["labelled from Ding22"].mgold == "2"
    assert rows["labelled from LASPM"].mgold == "0" and rows["supplement stars added"].mgold == "1"
    off = rows["offset ASPCAP - StarHorse, dwarfs, Teff (K)"]
    assert (off.mgold, off.truth, off.needs) == (NOT_BUILT, "—", "lbl_offsets (missing)")
    assert rows["golden sample"].mgold == NOT_BUILT and rows["golden sample"].paper == "5,105"


def test_offset_headline_shows_mean_and_standard_error_beside_the_injected_value():
    con = duckdb.connect()
    con.execute("""create table lbl_offsets as select * from (values ('aspcap', 'dwarf', 'teff_k', 90.0, 200.0, 400),
        ('laspm', 'dwarf', 'logg_dex', null, 0.2, 4)) t(catalog, class, param, mean, sigma, n)""")
    con.execute("create schema truth")
    con.execute("create table truth.injected_offsets as select 'aspcap' as catalog, 'dwarf' as class, "
                "'teff_k' as param, 87.0 as offset_value")
    hs = tuple(h for h in HEADLINES if h.quantity.startswith("offset") and ("ASPCAP" in h.quantity
                                                                           or "LASPM" in h.quantity))
    rows = {r.quantity: r for r in headline_rows(con, hs)}
    teff = rows["offset ASPCAP - StarHorse, dwarfs, Teff (K)"]
    assert (teff.mgold, teff.truth) == ("+90 ± 10 (n 400)", "+87 injected")      # 200 / sqrt(400)
    assert rows["offset LASPM - StarHorse, dwarfs, log g (dex)"].mgold == "not measured (n 4)"
    assert rows["offset ASPCAP - StarHorse, giants, Teff (K)"].mgold == "not measured (no matched stars)"


def test_a_headline_whose_value_fails_says_so_and_the_rest_stand():
    con = duckdb.connect()
    con.execute("create table t as select 1 as x")
    hs = (Headline("§0", "bad", "1", ("t",), lambda con: con.execute("select nope from t").fetchone()),
          Headline("§0", "good", "1", ("t",), lambda con: "1"))
    bad, good = headline_rows(con, hs)
    assert bad.mgold.startswith("error: BinderException") and good.mgold == "1"


# --------------------------------------------------------------------------- figure helpers on literal rows

def _isochrone_table(con):
    con.execute("create schema landing")
    rows = []
    for z in (0.0152 * 10 ** -0.5, 0.0152 * 10 ** -0.25, 0.0152, 0.0152 * 10 ** 0.25):
        for age in (1e9, 3e9, 5e9):
            for i, (logte, logg, label) in enumerate(((3.50, 5.0, 1), (3.56, 4.7, 1), (3.75, 4.3, 1),
                                                      (3.60, 1.0, 3), (3.55, 0.5, 7))):
                rows.append((z, age, 0.1 + i, logte, logg, label))
    con.execute("create table landing.isochrones (zini double, age_yr double, mini_msun double, "
                "mass_msun double, logte_k double, logg_dex double, label int)")
    con.executemany("insert into landing.isochrones values (?, ?, ?, ?, ?, ?, ?)",
                    [(z, a, m, m, t, g, lab) for z, a, m, t, g, lab in rows])


def test_isochrones_take_the_nearest_age_and_metallicity_within_the_m_star_range():
    con = duckdb.connect()
    tracks, note = F.isochrones(con, DEFAULT)
    assert tracks == [] and "not ingested" in note
    _isochrone_table(con)
    tracks, note = F.isochrones(con, DEFAULT)
    assert [round(t.mh_dex, 2) for t in tracks] == [-0.5, -0.25, 0.25]     # nearest to -0.6, -0.2, +0.2
    assert {t.age_gyr for t in tracks} == {3.0}
    # label 7 (a TP-AGB point) is past the RGB; logTe 3.75 (5,600 K) is outside the M range: a gap in the line
    assert all(np.isnan(t.teff_k).tolist() == [False, False, True, False] for t in tracks)
    assert all(np.nanmax(t.teff_k) < 4600 and np.isnan(t.logg_dex[2]) for t in tracks)
    assert "3 Gyr" in note and "-0.50 for -0.6" in note


def _meta(rows):
    cols = ("obsid", "class", "teff_k", "logg_dex", "mh_dex", "snr_i", "teff_lo_k", "logg_lo_dex", "mh_lo_dex")
    meta = {c: np.array([r[i] for r in rows], dtype=object if c == "class" else float) for i, c in enumerate(cols)}
    return meta


def test_teff_sequence_picks_the_group_with_most_teff_bins_and_the_best_spectrum_of_each():
    rows = [(1, "dwarf", 3510, 4.75, 0.05, 20, 3500, 4.7, 0.0), (2, "dwarf", 3520, 4.72, 0.02, 60, 3500, 4.7, 0.0),
            (3, "dwarf", 3610, 4.71, 0.01, 30, 3600, 4.7, 0.0), (4, "dwarf", 3760, 4.74, 0.08, 25, 3750, 4.7, 0.0),
            (5, "dwarf", 3860, 4.55, -0.3, 99, 3850, 4.5, -0.3), (6, "giant", 3600, 1.0, 0.0, 50, 3600, 1.0, 0.0)]
    idx, what = F.sequence(_meta(rows), DEFAULT, ("logg_lo_dex", "mh_lo_dex"), "teff_lo_k", n=5)
    assert [rows[i][0] for i in idx] == [2, 3, 4]             # S/N 60 beats 20 in the 3500 K bin
    assert what.startswith("dwarfs, log g 4.7 to 4.8")
    idx, _ = F.sequence(_meta(rows), DEFAULT, ("logg_lo_dex", "mh_lo_dex"), "teff_lo_k", n=2)
    assert [rows[i][0] for i in idx] == [2, 4]                # spread over the range: the ends


def test_sequences_widen_the_fixed_bins_until_three_members_exist():
    rows = [(1, "dwarf", 3510, 4.75, 0.05, 20, 3500, 4.7, 0.0), (2, "dwarf", 3610, 4.75, 0.15, 20, 3600, 4.7, 0.1),
            (3, "dwarf", 3710, 4.65, 0.05, 20, 3700, 4.6, 0.0)]
    idx, what = F.sequence(_meta(rows), DEFAULT, ("logg_lo_dex", "mh_lo_dex"), "teff_lo_k", n=5)
    assert sorted(rows[i][0] for i in idx) == [1, 2, 3] and what == "dwarfs, log g 4.6 to 4.8, [M/H] 0 to 0.2"


def test_dwarf_giant_pairs_share_teff_and_metallicity_bins():
    rows = [(1, "dwarf", 3610, 4.7, 0.0, 20, 3600, 4.7, 0.0), (2, "giant", 3620, 1.0, 0.0, 40, 3600, 1.0, 0.0),
            (3, "giant", 3630, 0.9, 0.0, 90, 3600, 0.9, 0.0), (4, "dwarf", 3900, 4.6, 0.0, 50, 3900, 4.6, 0.0)]
    pairs, what = F.dwarf_giant_pairs(_meta(rows), DEFAULT, n=5)
    assert [(rows[d][0], rows[g][0]) for d, g in pairs] == [(1, 3)] and "50 K x 0.1 dex" in what
    assert F.dwarf_giant_pairs(_meta(rows[:1] + rows[3:]), DEFAULT, n=5)[0] == []


EXAMPLE = Path(__file__).resolve().parents[3] / "warehouse.duckdb.example"


@pytest.mark.slow
def test_the_committed_example_renders_without_a_failed_figure(tmp_path):
    """warehouse.duckdb.example keeps only some spectra: the spectra figures use those it has."""
    if not EXAMPLE.exists():
        pytest.skip("warehouse.duckdb.example is missing: run `make example`")
    con = connect(EXAMPLE, read_only=True)
    try:
        rep = render(con, tmp_path, accuracy=False)
    finally:
        con.close()
    assert rep.failed == {}
    assert {n for n, s in rep.figures.items() if s == "drawn"} >= {1, 2, 3, 4, 5, 6, 10}


@pytest.mark.real
def test_kiel_draws_the_ingested_parsec_isochrones(real_data, tmp_path):
    """The real PARSEC files: their 'NGyr' folders hold Age = N x 1e8 yr, and the figure says what it drew."""
    from mgold.pipeline.ingest.catalog import ingest_catalog

    files = sorted((real_data / "isochrones").rglob("evans_passbands/*/*MH_*.dat"))
    if not files:
        pytest.skip(f"no PARSEC .dat files under {real_data / 'isochrones'}")
    wh = tmp_path / "w.duckdb"
    with open_warehouse(wh, command="test") as con:
        ingest_catalog(con, "isochrones", files)
    con = connect(wh, read_only=True)
    try:
        tracks, note = F.isochrones(con, DEFAULT)
    finally:
        con.close()
    assert [round(t.mh_dex, 2) for t in tracks] == [-0.5, -0.25, 0.25]
    assert all(np.isfinite(t.teff_k).sum() > 10 for t in tracks)
    assert f"at {tracks[0].age_gyr:g} Gyr (asked 3)" in note
