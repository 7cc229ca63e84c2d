"""lsp_results on literal rows: labels recovered between templates, RVs fitted where the header has none,
one result set per library rebuilt only when its own templates change; the laspm_fit SQL function gives the
same numbers; and `mgold laspm run` on the real LAMOST files with the real MILES library."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from mgold.pipeline.config import DEFAULT
from mgold.pipeline.model import ModelError
from mgold.pipeline.runner import Project, bind_config, build_models, run
from mgold.pipeline.stages.spectra import grid
from mgold.udfs.grid import C_KMS

RED = grid(DEFAULT, "red")
NATIVE = (3.5682, 1e-4, 3909)


def model_flux(loglam: np.ndarray, teff_k: float, logg_dex: float, mh_dex: float) -> np.ndarray:
    """A smooth stand-in spectrum whose band depths follow the labels (what LASPM must read back)."""
    w = 10 ** loglam
    t = (teff_k - 3500.0) / 400.0
    f = 1.0 + 0.3 * t * np.sin(w / 37.0) + 0.2 * (logg_dex - 3.0) / 2.0 * np.cos(w / 23.0) \
        + 0.15 * mh_dex * np.sin(w / 11.0 + 1.0)
    return (f * (w / 7000.0) ** (-2.0 - t)).astype(np.float32)


def library_rows(name: str, shift: float = 0.0) -> list[dict]:
    loglam = RED[0] + RED[1] * np.arange(RED[2])
    rows = []
    for i, (t, g, m) in enumerate((t, g, m) for t in (3100, 3300, 3500, 3700, 3900) for g in (4.4, 4.8, 5.2)
                                  for m in (-0.5, 0.0, 0.5)):
        f = model_flux(loglam, t + shift, g, m)
        rows.append({"library": name, "template_id": i, "name": f"t{i}", "teff_k": float(t), "logg_dex": g,
                     "mh_dex": m, "class": "dwarf", "snr": 100.0, "loglam0": RED[0], "dloglam": RED[1],
                     "n_pix": RED[2], "n_good_pix": RED[2], "flux": f, "ivar": np.full(RED[2], 1e4, np.float32)})
    return rows


def observations(rng, n: int = 12):
    """Spectra on the native LAMOST grid, in the observed frame, times a smooth calibration error."""
    loglam = NATIVE[0] + NATIVE[1] * np.arange(NATIVE[2])
    truth = []
    rows = []
    for k in range(n):
        t, g, m = rng.uniform(3250, 3750), rng.uniform(4.5, 5.1), rng.uniform(-0.3, 0.3)
        rv = rng.uniform(-150, 150)
        rest = loglam - np.log10(1 + rv / C_KMS)
        x = np.linspace(-1, 1, NATIVE[2])
        f = model_flux(rest, t, g, m) * (1 + 0.1 * x - 0.05 * x * x)
        snr = 80.0
        f = f + rng.normal(0, 1, f.size).astype(np.float32) * f / snr
        rows.append({"obsid": 1000 + k, "snr_i": snr, "rv_kms": None if k % 4 == 0 else rv,
                     "loglam0": NATIVE[0], "dloglam": NATIVE[1], "flux": f.astype(np.float32),
                     "ivar": (snr / f) ** 2})
        truth.append((t, g, m, rv))
    return rows, np.array(truth)


def _table(rows: list[dict], float_lists: tuple[str, ...]) -> pa.Table:
    cols = {k: [r[k] for r in rows] for k in rows[0]}
    return pa.table({k: (pa.array([np.asarray(v, np.float32) for v in vals], pa.list_(pa.float32()))
                         if k in float_lists else pa.array(vals)) for k, vals in cols.items()})


@pytest.fixture()
def warehouse():
    rng = np.random.default_rng(3)
    obs, truth = observations(rng)
    con = duckdb.connect()
    con.execute("create schema landing")
    con.register("o", _table(obs, ("flux", "ivar")))
    con.execute("create table landing.lamost_spectra as select obsid, loglam0, dloglam, flux, ivar from o")
    con.execute("create table stg_lamost as select obsid, snr_i, rv_kms, 'LAMOST J' || obsid as designation, "
                "true as is_m_type from o")
    lib = _table(library_rows("a") + library_rows("b"), ())
    n = RED[2]
    con.register("l", lib)
    con.execute(f"create table landing.library_spectra as select * replace (flux::float[{n}] as flux, "
                f"ivar::float[{n}] as ivar) from l")
    return con, truth


CFG = DEFAULT.with_overrides({"laspm.libraries": ["a", "b"]})


def test_labels_and_missing_rvs_are_recovered_between_the_templates(warehouse):
    con, truth = warehouse
    build_models(con, ["lsp_results"], CFG.with_overrides({"laspm.libraries": ["a"]}))
    got = con.execute("select teff_k, logg_dex, mh_dex, rv_used_kms, rv_source, flags from lsp_results "
                      "where library = 'a' order by obsid").fetchall()
    assert len(got) == len(truth)
    d = np.array([[g[0] - t[0], g[1] - t[1], g[2] - t[2]] for g, t in zip(got, truth)])
    # the templates are 200 K / 0.4 / 0.5 dex apart: the k-best interpolation lands well inside a step
    assert np.median(np.abs(d[:, 0])) < 60 and np.median(np.abs(d[:, 1])) < 0.15 and np.median(np.abs(d[:, 2])) < 0.15
    fitted = [i for i in range(len(truth)) if i % 4 == 0]
    assert [got[i][4] for i in fitted] == ["fitted"] * len(fitted)
    assert all(got[i][5] & 8 for i in fitted) and not any(got[i][5] & 8 for i in range(len(truth)) if i % 4)
    assert max(abs(got[i][3] - truth[i][3]) for i in fitted) < 10.0


def test_only_the_result_set_whose_templates_changed_is_refitted(warehouse):
    con, _ = warehouse
    project = Project.load()

    def go():
        res = {r.name: r for r in run(con, project, CFG, select="lsp_results")}["lsp_results"]
        built = {r[0] for r in con.execute(
            "select model from meta.model_runs where status = 'built' and model like 'lsp_results[%' and run_id = "
            "(select run_id from meta.runs order by started_at desc limit 1)").fetchall()}
        return res, built

    res, built = go()
    assert res.status == "built" and built == {"lsp_results[a]", "lsp_results[b]"}
    assert go()[0].status == "fresh"
    con.execute("update landing.library_spectra set teff_k = teff_k + 1 where library = 'b'")
    _, built = go()
    assert built == {"lsp_results[b]"}


def test_an_empty_library_is_one_clear_error(warehouse):
    con, _ = warehouse
    with pytest.raises(ModelError, match="library 'nope' has no templates"):
        build_models(con, ["lsp_results"], CFG.with_overrides({"laspm.libraries": ["nope"]}))


def test_the_laspm_fit_sql_function_gives_the_models_numbers(warehouse):
    from mgold.pipeline.stages.laspm import register_laspm_udf

    con, _ = warehouse
    cfg = CFG.with_overrides({"laspm.libraries": ["a"], "laspm.udf_library": "a"})
    build_models(con, ["lsp_results"], cfg)
    bind_config(con, cfg)
    register_laspm_udf(con, cfg)
    got = con.execute("""select r.obsid, f.teff_k, f.flags, r.teff_k, r.flags from lsp_results r
                         join (select obsid, laspm_fit(s.flux, s.ivar, s.loglam0, s.dloglam, h.rv_kms) f
                               from landing.lamost_spectra s join stg_lamost h using (obsid)) u using (obsid)
                         order by 1""").fetchall()
    assert len(got) == 12 and all(a == c and b == d for _, a, b, c, d in got)


@pytest.mark.real
def test_laspm_runs_on_a_warehouse_of_real_lamost_files_and_the_real_miles_library(real_data, tmp_path):
    from mgold.pipeline.cli import app

    w = str(tmp_path / "real.duckdb")
    cli = CliRunner()
    assert cli.invoke(app, ["ingest", "lamost", str(real_data / "lamost"), "-w", w]).exit_code == 3   # the MRS file
    assert cli.invoke(app, ["ingest", "library", "miles", str(real_data / "libraries" / "miles_k_m_stars"),
                            "-w", w]).exit_code == 3                                                   # one bad label row
    res = cli.invoke(app, ["laspm", "run", "--library", "miles", "-w", w])
    assert res.exit_code == 0, res.output
    con = duckdb.connect(w, read_only=True)
    con.execute(f"set file_search_path = '{tmp_path}'")
    n_m, missing = con.execute(
        "select count(*), count(*) filter (where h.rv_kms is null) from landing.lamost_headers h "
        "where h.class = 'STAR' and regexp_matches(h.subclass, '^(sd|d|g)?M([0-9]|$)')").fetchone()
    rows = con.execute("select teff_k, logg_dex, mh_dex, rv_source, flags from lsp_results "
                       "where library = 'miles'").fetchall()
    con.close()
    assert n_m > 10 and len(rows) == n_m
    assert all(2800 < t < 5400 and -0.5 < g < 5.6 and -2.6 < m < 1.0 for t, g, m, *_ in rows)
    fitted = [r for r in rows if r[3] == "fitted"]
    assert len(fitted) == missing >= 1 and all(r[4] & 8 for r in fitted)


@pytest.mark.parametrize("subset, expected", [("all", [1, 2, 3, 4]), ("best_per_bin", [2, 3])])
def test_the_golden_library_takes_all_golden_spectra_or_the_best_of_each_bin(subset, expected):
    from mgold.pipeline.stages.laspm import GOLDEN_SQL

    con = duckdb.connect()
    con.execute("create table gold_sample as select * from (values "
                "(1, 'J1', 3300.0, 4.8, 0.0, 'dwarf', 40.0, 'b1'), (2, 'J2', 3310.0, 4.8, 0.0, 'dwarf', 90.0, 'b1'), "
                "(3, 'J3', 3500.0, 4.6, 0.1, 'dwarf', 20.0, 'b2'), (4, 'J4', 3510.0, 4.6, 0.1, 'dwarf', 20.0, 'b2')) "
                "t(obsid, designation, teff_k, logg_dex, mh_dex, class, snr_i, bin_id)")
    con.execute("create table spc_red_grid as select obsid, 3.77 as loglam0, 1e-4 as dloglam, 2 as n_pix, "
                "2 as n_good_pix, [1.0, 1.0] as flux, [1.0, 1.0] as ivar from gold_sample")
    bind_config(con, DEFAULT.with_overrides({"laspm.golden_subset": subset}))
    got = [r[0] for r in con.execute(f"select template_id from ({GOLDEN_SQL})").fetchall()]
    assert got == expected   # best S/N per bin; a tie goes to the lower obsid


def test_an_unknown_golden_subset_is_refused():
    with pytest.raises(ValueError, match="laspm.golden_subset' must be one of all, best_per_bin"):
        DEFAULT.with_overrides({"laspm.golden_subset": "best"})
