"""pipeline/evaluate/labels.py on the session's tiny build: the accuracy figures against the truth.

Injected offsets are whatever the tiny preset's config says (read from it here, never typed in);
tolerances scale with the standard errors the evaluation itself reports.
"""

import math

import duckdb
import pytest
from typer.testing import CliRunner

from mgold.pipeline.build import preset_config
from mgold.pipeline.cli import app
from mgold.pipeline.evaluate.labels import BIAS_TARGET, OFFSET_TARGET, PARAMS, evaluate, has_truth

FLOOR = {"teff_k": 3.0, "logg_dex": 0.006, "mh_dex": 0.006}        # systematics allowed on top of noise


@pytest.fixture(scope="module")
def tiny_eval(tiny_build):
    cfg = preset_config("tiny")
    con = duckdb.connect(str(tiny_build.warehouse), read_only=True)
    try:
        yield cfg, evaluate(con, cfg), con
    finally:
        con.close()


@pytest.mark.slow
def test_offset_recovery_covers_every_transferred_pair_with_the_universes_injected_offsets(tiny_eval):
    cfg, ev, con = tiny_eval
    pairs = [(c, "dwarf") for c in cfg.labels.dwarf_priority] + [(c, "giant") for c in cfg.labels.giant_priority]
    assert [(r["catalog"], r["class"], r["param"]) for r in ev["offsets"]] == \
        [(c, k, p) for c, k in pairs for p in PARAMS]
    for r in ev["offsets"]:
        cat = getattr(cfg.synth, r["catalog"])
        assert r["injected"] == pytest.approx(getattr(getattr(cat, r["class"]), r["param"]))
    measured = [r for r in ev["offsets"] if r["measured"]]
    # both classes get boxes on tiny, so every pair has enough stars (a broken giant fit leaves five unmeasured)
    assert len(measured) == len(ev["offsets"]), [r for r in ev["offsets"] if not r["measured"]]
    sql = {(c, k, p): (m, s, n) for c, k, p, m, s, n in
           con.execute("select catalog, class, param, mean, sigma, n from lbl_offsets").fetchall()}
    for r in measured:
        mean, sigma, n = sql[(r["catalog"], r["class"], r["param"])]
        assert (r["recovered"], r["n"]) == (pytest.approx(mean), n)
        assert r["se"] == pytest.approx(sigma / math.sqrt(n))
        assert abs(r["diff"]) < 5 * r["se"] + FLOOR[r["param"]], r
        assert r["meets"] == (abs(r["diff"]) <= OFFSET_TARGET[r["param"]])
        assert r["se_limited"] == (r["se"] > OFFSET_TARGET[r["param"]])
    assert ev["offsets_meet"] == all(r["meets"] for r in ev["offsets"])


@pytest.mark.slow
def test_labelled_sample_is_unbiased_with_catalogue_sized_scatter_and_right_classes(tiny_eval):
    cfg, ev, con = tiny_eval
    n_sample = con.execute("select count(*) from lbl_labelled_sample").fetchone()[0]
    whole = ev["bias"][0]
    assert (whole["by"], whole["group"]) == ("all", "all")
    assert whole["n"] == ev["n_labelled"] == ev["n_with_truth"] == n_sample > 50
    for by in ("class", "label_source", "class/label_source", "supplement"):
        assert sum(g["n"] for g in ev["bias"] if g["by"] == by) == n_sample, by
    assert {g["group"] for g in ev["bias"] if g["by"] == "class"} == {"dwarf", "giant"}
    for g in ev["bias"]:
        for p, v in g["params"].items():
            if g["n"] >= 10:
                assert abs(v["bias"]) < 5 * v["se"] + 3 * FLOOR[p], (g["by"], g["group"], p, v)
                assert v["se"] >= v["se_noise"] and v["se"] >= v["se_offsets"]
            assert v["meets"] == (abs(v["bias"]) <= BIAS_TARGET[p])
        if g["by"] == "label_source":
            # shifted labels scatter about the truth by the catalogue's own noise: a supplement outlier
            # or a star shifted by the other class's offsets would show up here
            noise = getattr(cfg.synth, g["group"]).noise
            for p, v in g["params"].items():
                assert v["scatter"] < 2 * getattr(noise, p), (g["group"], p, v)
    assert ev["class_mismatches"] == {"labelled": {}, "primary": {}}


@pytest.mark.slow
def test_report_labels_prints_the_accuracy_section_on_a_synthetic_build(tiny_build, tiny_eval):
    res = CliRunner().invoke(app, ["report", "labels", "-w", str(tiny_build.warehouse)])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "accuracy vs synthetic truth" in out and "no truth tables" not in out
    section = out[out.index("recovered offset - injected"):]
    assert section.count("\naspcap   dwarf") == 3 and "injected" in section and "verdict" in section
    assert "class mismatches, labelled sample: none" in out


def test_evaluate_refuses_a_warehouse_without_truth():
    con = duckdb.connect()
    con.execute("create schema truth")          # every warehouse has the schema; only synthetic ones fill it
    assert not has_truth(con)
    with pytest.raises(ValueError, match="no truth tables"):
        evaluate(con)
