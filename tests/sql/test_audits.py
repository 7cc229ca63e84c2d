"""The sql/audits queries: empty on a consistent literal universe, and they catch planted faults."""

import numpy as np

from mgold.pipeline.sqlmodel import load_audits
from sqltest import connect, rows
from test_labels import draw_offsets, load, universe


def audit(name):
    return next(a for a in load_audits() if a.name == name)


def labelled_con():
    rng = np.random.default_rng(2)
    con = connect()
    load(con, *universe(rng, draw_offsets(rng), n=150))
    return con


def test_label_audits_pass_on_a_consistent_sample():
    con = labelled_con()
    assert con.execute("select count(*) from lbl_labelled_sample").fetchone()[0] > 0
    for name in ("audit_labelled_sample_physical", "audit_labelled_sample_traceable"):
        assert rows(con, audit(name).sql) == [], name


def test_label_audits_catch_duplicates_bad_ranges_and_foreign_offsets():
    con = labelled_con()
    con.execute("insert into lbl_labelled_sample select * from lbl_labelled_sample limit 1")
    con.execute("update lbl_labelled_sample set teff_k = 9000 where source_id = "
                "(select max(source_id) from lbl_labelled_sample)")
    reasons = {r["reason"] for r in rows(con, audit("audit_labelled_sample_physical").sql)}
    assert reasons == {"duplicate star", "label missing or outside 2000-5000 K, -1..6 dex, -3..1.5 dex"}
    con.execute("update lbl_labelled_sample set offset_teff_k = offset_teff_k + 1 where source_id = "
                "(select min(source_id) from lbl_labelled_sample)")
    reasons = {r["reason"] for r in rows(con, audit("audit_labelled_sample_traceable").sql)}
    assert "teff offset differs from lbl_offsets" in reasons
