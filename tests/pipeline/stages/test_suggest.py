"""cln_suggestions (stages/suggest.py) and the decisions it feeds (cln_decisions, cln_kept, inspect), on literal rows."""

from __future__ import annotations

import itertools

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from mgold.pipeline import inspect
from mgold.pipeline.cli import app
from mgold.pipeline.config import DEFAULT
from mgold.pipeline.runner import build_models
from mgold.pipeline.stages import clean, suggest

from cleanrows import clean_layer

NPIX = 200
LOGLAM0 = 3.83
CFG = DEFAULT.with_overrides({"clean.dist_ref_pix": NPIX, "clean.suggestion_min_pairs": 20})
GRADIENT = 0.25        # per 50 K step: D between spectra one Teff step apart is ~10 x this = 2.5 > eps
RAMP = np.sin(np.linspace(0, 40, NPIX))    # a Teff-sensitive feature no low-order polynomial removes


def _flux(rng, teff, n=1, broken=False):
    base = 1 + 0.3 * np.sin(np.linspace(0, 12, NPIX)) + GRADIENT * (teff - 3600.0) / 50.0 * RAMP
    f = base[None, :] * (1 + 0.005 * rng.standard_normal((n, NPIX)))
    if broken:
        f[:, 60:110] *= 0.3
    return 50.0 * f


# (name, teff_k, logg_dex, broken, unusable): two reference bins of 6 alike spectra either side in Teff,
# single-sample bins between them (clean, broken, unusable), and one far away
STARS = ([(f"ref_lo{i}", 3570.0 + 2 * i, 4.75, False, False) for i in range(6)]
         + [(f"ref_hi{i}", 3670.0 + 2 * i, 4.75, False, False) for i in range(6)]
         + [("clean", 3625.0, 4.75, False, False), ("broken", 3625.0, 4.85, True, False),
            ("unusable", 3625.0, 4.65, False, True), ("alone", 3925.0, 4.75, False, False)])
OBSID = {name: 300 + i for i, (name, *_rest) in enumerate(STARS)}


def _warehouse(con):
    rng = np.random.default_rng(11)
    flux = np.vstack([_flux(rng, t, broken=b) for _, t, _, b, _ in STARS])
    ivar = np.full_like(flux, 1.0 / (0.005 * 50.0) ** 2)
    for i, (*_rest, unusable) in enumerate(STARS):
        if unusable:
            ivar[i, 20:] = 0.0
    t = pa.table({"obsid": [OBSID[s[0]] for s in STARS], "source_id": list(range(1, len(STARS) + 1)),
                  "class": ["dwarf"] * len(STARS), "teff_k": [s[1] for s in STARS],
                  "logg_dex": [s[2] for s in STARS], "mh_dex": [0.05] * len(STARS),
                  "snr_i": [40.0 + i for i in range(len(STARS))], "label_source": ["aspcap"] * len(STARS)})
    return clean_layer(con, t, flux, ivar, CFG, LOGLAM0)


@pytest.fixture()
def con():
    return _warehouse(duckdb.connect())


def _suggestions(con) -> dict[str, dict]:
    cur = con.execute("select * from cln_suggestions")
    cols = [c[0] for c in cur.description]
    by_obsid = {r[1]: dict(zip(cols, r)) for r in cur.fetchall()}
    return {name: by_obsid[o] for name, o in OBSID.items() if o in by_obsid}


def test_a_clean_spectrum_between_kept_neighbours_is_suggested_for_keeping(con):
    s = _suggestions(con)
    assert set(s) == {"clean", "broken", "unusable", "alone"}           # every queued spectrum, no reference
    c = s["clean"]
    assert c["suggestion"] == "keep" and c["confidence"] > 0.9 and c["n_references"] == 12
    assert min(c["distances"]) > CFG.clean.dbscan_eps                  # raw D: one Teff step away, beyond eps
    assert c["nearest_scaled_dist"] <= CFG.clean.dbscan_eps             # scaled: as close as a bin neighbour
    assert c["n_within"] >= c["n_needed"] == int(clean.min_pts(13, CFG)) - 1


def test_a_broken_spectrum_is_suggested_for_rejection(con):
    b = _suggestions(con)["broken"]
    assert b["suggestion"] == "reject" and b["confidence"] > 0.9 and b["n_within"] == 0


def test_unusable_and_isolated_spectra_are_flagged_not_crashed_on(con):
    s = _suggestions(con)
    assert (s["unusable"]["suggestion"], s["unusable"]["confidence"]) == ("reject", 1.0)
    assert s["unusable"]["note"] == suggest.NOTE_UNUSABLE
    assert s["alone"]["suggestion"] is None and s["alone"]["note"] == suggest.NOTE_NO_REFERENCES
    q = {r["bin_id"]: r for r in inspect.queue(con, "confidence")}
    assert [r["status"] for r in inspect.queue(con, "confidence")][0] == "pending"     # no suggestion sorts first
    assert q["t3900_g4.70_m0.00"]["confidence"] is None


def test_evidence_distances_are_the_dbscan_kernel_on_the_group_prepared_as_one_bin(con):
    c = _suggestions(con)["clean"]
    rows = con.execute("select obsid, flux, ivar, rv_kms from spc_cluster_grid where obsid in "
                       f"({', '.join(map(str, [OBSID['clean'], *c['reference_obsids']]))})").fetchall()
    order = [OBSID["clean"], *c["reference_obsids"]]
    by = {r[0]: r for r in rows}
    F = np.array([by[o][1] for o in order], dtype=np.float64)
    IV = np.array([by[o][2] for o in order], dtype=np.float64)
    loglam = LOGLAM0 + 1e-4 * np.arange(NPIX)
    D = clean.bin_distances(F, IV, CFG, loglam, np.full(len(order), 10.0))
    np.testing.assert_allclose(c["distances"], D[0, 1:], rtol=1e-12)


def test_the_label_gradient_fit_recovers_injected_slopes_despite_outliers():
    rng = np.random.default_rng(2)
    delta = rng.uniform(-2, 2, (400, 3))
    a = np.array([2.0, 0.0, 0.5])
    d2 = 0.3 + (delta ** 2) @ a + 0.05 * rng.standard_normal(400)
    d2[:20] += 40.0                                                     # defective pairs
    got_a, got_c, sigma = suggest.fit_label_gradient(d2, delta, np.full(400, 0.0001))
    np.testing.assert_allclose(got_a, a, atol=0.02)
    assert got_c == pytest.approx(0.3, abs=0.03) and sigma == pytest.approx(0.05, abs=0.02)
    assert (suggest.fit_label_gradient(d2, -delta, np.zeros(400))[0] >= 0).all()
    a0, c0, s0 = suggest.fit_label_gradient(np.array([1.0, 2.0]), np.zeros((2, 3)), np.zeros(2))
    assert (a0 == 0).all() and s0 == 0.0                                # too few pairs: eps alone


@pytest.mark.parametrize("k", [0, 1, 2, 4, 5])
def test_p_at_least_matches_enumerating_every_outcome(k):
    p = np.array([0.1, 0.5, 0.9, 0.3])
    want = sum(np.prod([q if hit else 1 - q for q, hit in zip(p, outcome)])
               for outcome in itertools.product([0, 1], repeat=4) if sum(outcome) >= k)
    assert suggest.p_at_least(p, k) == pytest.approx(want, abs=1e-12)


def test_confident_suggestions_reach_cln_kept_unless_a_person_decided(con):
    kept = dict(con.execute("select obsid, kept_by from cln_kept").fetchall())
    assert kept[OBSID["clean"]] == "suggestion" and OBSID["broken"] not in kept
    inspect.decide(con, "t3600_g4.70_m0.00", reject=[OBSID["clean"]], note="a person disagrees")
    build_models(con, ["cln_decisions", "cln_kept"], CFG)
    assert OBSID["clean"] not in dict(con.execute("select obsid, kept_by from cln_kept").fetchall())
    con.execute("delete from landing.inspection_decisions")
    con.execute("update cln_suggestions set confidence = 0.95 where obsid = ?", [OBSID["clean"]])
    for threshold, kept in ((0.96, False), (0.95, True)):
        build_models(con, ["cln_decisions", "cln_kept"],
                     CFG.with_overrides({"clean.suggestion_min_confidence": threshold}))
        assert (OBSID["clean"] in dict(con.execute("select obsid, kept_by from cln_kept").fetchall())) == kept


def test_suggested_keeps_are_capped_per_bin_by_snr(con):
    con.execute("create or replace table cln_suggestions as select * replace ('keep' as suggestion, 1.0 as confidence)"
                " from cln_suggestions")
    con.execute("update cln_suggestions set bin_id = 't3600_g4.70_m0.00'")
    build_models(con, ["cln_kept"], CFG.with_overrides({"clean.cap_per_bin": 2}))
    got = con.execute("select obsid from cln_kept where kept_by = 'suggestion' order by obsid").fetchall()
    assert [o for (o,) in got] == sorted([OBSID["unusable"], OBSID["alone"]])     # the two of highest S/N


def test_accepted_suggestions_are_decisions_a_person_can_replace(con):
    keeps, rejects = inspect.accept_suggestions(con, 0.9)
    rows = con.execute("select obsid, decision, suggested from landing.inspection_decisions order by obsid").fetchall()
    assert (keeps, rejects) == (1, 2) and all(s for *_, s in rows)
    assert {o: d for o, d, _ in rows} == {OBSID["clean"]: "keep", OBSID["broken"]: "reject",
                                          OBSID["unusable"]: "reject"}
    inspect.decide(con, "t3600_g4.80_m0.00", keep=[OBSID["broken"]])
    assert inspect.accept_suggestions(con, 0.9) == (1, 1)              # the person's decision stays
    build_models(con, ["cln_decisions", "cln_kept", "cln_inspection_queue"], CFG)
    assert dict(con.execute("select obsid, by_person from cln_decisions").fetchall())[OBSID["broken"]] is True
    kept = dict(con.execute("select obsid, kept_by from cln_kept").fetchall())
    assert kept[OBSID["broken"]] == "inspection" and kept[OBSID["clean"]] == "suggestion"
    status = dict(con.execute("select bin_id, status from cln_inspection_queue").fetchall())
    assert status["t3600_g4.80_m0.00"] == "decided" and status["t3600_g4.70_m0.00"] == "suggested"
    assert status["t3900_g4.70_m0.00"] == "pending"
    assert inspect.undo_suggestions(con) == 2
    assert con.execute("select count(*) from landing.inspection_decisions").fetchone()[0] == 1
    with pytest.raises(inspect.InspectError, match="outside 0.5-1"):
        inspect.accept_suggestions(con, 0.2)


def test_inspect_commands_list_show_and_accept_suggestions(tmp_path):
    wh = tmp_path / "w.duckdb"
    _warehouse(duckdb.connect(str(wh))).close()
    run = CliRunner().invoke
    r = run(app, ["inspect", "list", "-w", str(wh), "--sort", "confidence"])
    assert r.exit_code == 0, r.output
    assert "1 bin(s); 1 pending (the manual queue), 3 settled by suggestions" in r.output
    assert "t3900_g4.70_m0.00" in r.output and "t3600_g4.70_m0.00" not in r.output
    out = tmp_path / "bin.png"
    r = run(app, ["inspect", "show", "t3600_g4.70_m0.00", "-w", str(wh), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert f"{OBSID['clean']}: keep (confidence" in r.output and out.read_bytes()[:4] == b"\x89PNG"
    r = run(app, ["inspect", "accept-suggestions", "-w", str(wh), "--min-confidence", "0.95"])
    assert r.exit_code == 0 and "(1 keep, 2 reject)" in r.output, r.output
    r = run(app, ["inspect", "accept-suggestions", "-w", str(wh), "--undo"])
    assert r.exit_code == 0 and "deleted 3" in r.output
    r = run(app, ["inspect", "list", "-w", str(wh), "--sort", "nonsense"])
    assert r.exit_code == 1 and "unknown sort 'nonsense'" in r.output
