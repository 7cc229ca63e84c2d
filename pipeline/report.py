"""Plain functions behind ``mgold report``: figures read from a built warehouse, no printing here."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from .config import DEFAULT


@dataclass(frozen=True)
class LabelsReport:
    total: int
    by_source: list[tuple[str, int, int]]          # (label_source, n stars, of which supplement)
    by_class: list[tuple[str, str, int]]           # (class, label_source, n stars)
    offsets: list[tuple]                           # rows of lbl_offsets, see OFFSET_COLUMNS
    cmd_fits: list[tuple]                          # rows of sel_cmd_fit, see FIT_COLUMNS


OFFSET_COLUMNS = ("catalog", "class", "param", "mean", "sigma", "n", "n_matched", "iterations", "method", "run_id")
FIT_COLUMNS = ("class", "fit_order", "c0", "c1", "c2", "c3", "width_mag", "n_steps", "n_stars")


def labels_report(con: duckdb.DuckDBPyConnection) -> LabelsReport:
    """Per-source counts of the labelled sample (paper §2.2 last paragraph), the offsets and the CMD fits."""
    by_source = con.execute(
        "select label_source, count(*), count(*) filter (where is_supplement) from lbl_labelled_sample "
        "group by 1 order by 2 desc, 1").fetchall()
    by_class = con.execute(
        "select class, label_source, count(*) from lbl_labelled_sample group by 1, 2 order by 1, 3 desc").fetchall()
    offsets = con.execute(
        f"select {', '.join(OFFSET_COLUMNS)} from lbl_offsets order by class, catalog, "
        "list_position(['teff_k', 'logg_dex', 'mh_dex'], param)").fetchall()
    fits = con.execute(f"select {', '.join(FIT_COLUMNS)} from sel_cmd_fit order by class").fetchall()
    return LabelsReport(sum(n for _, n, _ in by_source), by_source, by_class, offsets, fits)


def sentence(rep: LabelsReport, catalogs=DEFAULT.labels.catalogs) -> str:
    """'N stars: a from ASPCAP, b from Qiu23, ...' in the words of paper §2.2 (names from the
    registry ``labels.catalogs`` the build used)."""
    names = {c.key: c.display_name for c in catalogs}
    parts = ", ".join(f"{n:,} from {names.get(s, s)}" for s, n, _ in rep.by_source)
    n_sup = sum(k for _, _, k in rep.by_source)
    return f"{rep.total:,} stars: {parts} (of which {n_sup:,} from the supplement)."
