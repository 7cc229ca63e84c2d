"""`mgold report labels` over a small labelled warehouse (literal universe of test_labels)."""

import duckdb
import numpy as np
from typer.testing import CliRunner

from mgold.pipeline.cli import app
from mgold.pipeline.runner import bind_config
from sqltest import table
from test_labels import draw_offsets, load, universe
from test_select import BINS


def test_report_labels_prints_counts_per_source_and_the_offset_table(tmp_path):
    wh = tmp_path / "w.duckdb"
    con = duckdb.connect(str(wh))
    bind_config(con, run_id="r1")
    rng = np.random.default_rng(4)
    load(con, *universe(rng, draw_offsets(rng), n=120))
    table(con, "sel_cmd_bins", BINS, [])
    con.execute("create table sel_cmd_fit as select 'dwarf' as class, 1 as fit_order, 1.0 as c0, 2.0 as c1, "
                "0.0 as c2, 0.0 as c3, 0.8 as width_mag, 6 as n_steps, 100 as n_stars")
    counts = dict(con.execute("select label_source, count(*) from lbl_labelled_sample group by 1").fetchall())
    con.close()
    res = CliRunner().invoke(app, ["report", "labels", "-w", str(wh)])
    assert res.exit_code == 0, res.output
    first = res.output.splitlines()[0]
    assert first.startswith(f"{sum(counts.values()):,} stars:")
    assert f"{counts['aspcap']:,} from ASPCAP" in first and f"{counts['ding22']:,} from Ding22" in first
    assert "clipped_gaussian" in res.output and "logg_dex" in res.output
    assert res.output.rstrip().endswith("no truth tables: accuracy skipped")


def test_report_labels_fails_in_one_line_before_the_labels_are_built(tmp_path):
    wh = tmp_path / "w.duckdb"
    duckdb.connect(str(wh)).close()
    res = CliRunner().invoke(app, ["report", "labels", "-w", str(wh)])
    assert res.exit_code == 1 and "labels not built yet" in res.output
    assert CliRunner().invoke(app, ["report", "labels", "--help"]).output.count("Example:") == 1
