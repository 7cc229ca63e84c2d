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


# --------------------------------------------------------------------------- LASPM (paper §4)

# paper §4.2 (precision, S/N >= 10), §4.3 (StarHorse), §4.4 (APOGEE): (teff_k, logg_dex, mh_dex)
PAPER = {
    "precision": (67.0, 0.07, 0.14),
    "precision_predecessor": (118.0, 0.20, 0.29),
    "starhorse_bias": (6.0, 0.02, 0.03),
    "starhorse_scatter": (103.0, 0.12, 0.21),
    "apogee_dwarf_scatter": (54.0, 0.06, 0.12),
    "apogee_giant_scatter": (23.0, 0.15, 0.15),
}
PARAMS = ("teff_k", "logg_dex", "mh_dex")
NOT_BUILT = "not built yet"


def trio_text(values) -> str:
    """(teff_k, logg_dex, mh_dex) -> '67 K / 0.07 / 0.14 dex', the paper's way of quoting them."""
    if values is None or any(v is None for v in values):
        return NOT_BUILT
    return f"{values[0]:.0f} K / {values[1]:.2f} / {values[2]:.2f} dex"


def _rows(con, sql: str, params=None) -> list[dict]:
    cur = con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def precision(con) -> list[dict]:
    return _rows(con, "select library, param, n, sigma, std from lsp_precision where snr_lo is null order by 1, 2")


def precision_by_snr(con, library: str, snr_max: float = 100.0) -> list[dict]:
    """Fig. 16 as a table: per S/N_i step below ``snr_max``, the visits and each parameter's sigma."""
    return _rows(con, """select snr_lo, max(n) n,
                                any_value(sigma) filter (where param = 'teff_k') teff_k,
                                any_value(sigma) filter (where param = 'logg_dex') logg_dex,
                                any_value(sigma) filter (where param = 'mh_dex') mh_dex
                         from lsp_precision where library = ? and snr_lo is not null and snr_lo < ?
                         group by snr_lo order by snr_lo""", [library, snr_max])


def vs_starhorse(con) -> list[dict]:
    return _rows(con, "select library, param, n, n_stars, bias, scatter from lsp_vs_starhorse order by 1, 2")


def vs_apogee(con) -> list[dict]:
    return _rows(con, "select library, class, param, n, n_stars, bias, scatter from lsp_vs_apogee order by 1, 2, 3")


def summary(con) -> list[dict]:
    return _rows(con, """select library, count(*) n, sum((flags & 32 = 0)::int) n_fitted,
                        sum((rv_source = 'fitted')::int) n_rv_fitted, sum((flags & 1 > 0)::int) n_edge,
                        sum((flags & 2 > 0)::int) n_poor, median(chi2_nu) median_chi2_nu
                        from lsp_results group by 1 order by 1""")
