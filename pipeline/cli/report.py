"""`mgold report`: figures of a built warehouse."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import duckdb
import typer

from ._common import DEFAULT_WAREHOUSE, Warehouse, fail, reading

app = typer.Typer(help="Reports on a built warehouse.", no_args_is_help=True)


def _table(columns, rows) -> str:
    cell = lambda v: "" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))  # noqa: E731
    cells = [[cell(v) for v in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    fmt = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(columns), fmt(["-" * w for w in widths])] + [fmt(r) for r in cells])


@app.command()
def labels(warehouse: Warehouse = DEFAULT_WAREHOUSE) -> None:
    """Labelled-sample counts per label source (like paper §2.2), the measured offsets to StarHorse
    per catalogue x class x parameter, and the CMD fits of the primary sample. On a synthetic build,
    also the accuracy vs truth: recovered vs injected offsets and the labelled sample's bias and
    scatter, against issue 4's targets, each with its standard error.

    Example: mgold report labels -w demo/warehouse.duckdb
    """
    with reading(warehouse) as con:
        _labels(con, warehouse)


def _labels(con, warehouse: Path) -> None:
    from ..report import FIT_COLUMNS, OFFSET_COLUMNS, labels_report, sentence
    from ..runner import recorded_config

    try:
        rep = labels_report(con)
    except duckdb.CatalogException as e:
        fail(f"{warehouse}: labels not built yet ({str(e).splitlines()[0]}); run `mgold sql run` first")
    typer.echo(sentence(rep, recorded_config(con, "lbl_labelled_sample").labels.catalogs))
    typer.echo("\nper class and source")
    typer.echo(_table(("class", "label_source", "n"), rep.by_class))
    typer.echo("\noffsets (catalogue - StarHorse), measured on this run")
    typer.echo(_table(OFFSET_COLUMNS, rep.offsets))
    typer.echo("\nCMD fits: M_G = c0 + c1 x + c2 x^2 + c3 x^3, x = (BP-RP)_0; box = fit +- width_mag")
    typer.echo(_table(FIT_COLUMNS, rep.cmd_fits))
    from ..evaluate.labels import evaluate, has_truth

    if not has_truth(con):
        typer.echo("\nno truth tables: accuracy skipped")
        return
    typer.echo("\n" + _labels_accuracy(evaluate(con)))


def _labels_accuracy(ev: dict) -> str:
    """The accuracy section of `report labels` (figures from pipeline/evaluate/labels.py)."""
    from ..evaluate.html import labels_accuracy_tables

    heading, tables, mismatches = labels_accuracy_tables(ev)
    lines = [heading]
    for t in tables:
        lines += [f"\n{t.title}", _table(t.columns, t.rows)]
    return "\n".join(lines + [""] + mismatches)


@app.command("clean")
def clean_cmd(warehouse: Warehouse = DEFAULT_WAREHOUSE) -> None:
    """Cleaning accuracy vs the synthetic truth (paper §2.4): defect recall overall and per kind,
    the accepted fraction of clean eligible spectra with its noise-free ceiling and by S/N, the
    noise floor of the distance, purity and cln_kept size, at the eps the clean layer was built with.

    Example: mgold report clean -w demo/warehouse.duckdb
    """
    from ..evaluate.clean import evaluate, format_report

    with reading(warehouse) as con:
        have = {f"{s}.{t}" for s, t in con.execute(
            "select table_schema, table_name from information_schema.tables").fetchall()}
        missing = [t for t in ("main.cln_dbscan", "main.cln_kept") if t not in have]
        if missing:
            fail(f"{warehouse}: clean layer not built ({', '.join(missing)} missing); "
                 "run `mgold build` or `mgold sql run --select layer:clean`")
        missing = [t for t in ("truth.spectra", "truth.stars") if t not in have]
        if missing:
            fail(f"{warehouse}: no truth tables ({', '.join(missing)} missing): the cleaning accuracy "
                 "needs a synthetic build (mgold build --preset ...)")
        text = format_report(evaluate(con))
    typer.echo(text)


@app.command("html")
def html_cmd(warehouse: Warehouse = DEFAULT_WAREHOUSE,
             out: Annotated[Path, typer.Option("--out", "-o", help="Folder for index.html and the figure PNGs.")]
             = Path("report")) -> None:
    """The paper's figures and headline numbers of this warehouse as one page: OUT/index.html (no
    JavaScript, readable on a phone) + one PNG per figure. The headline table puts every number the
    paper quotes beside mgold's and, on a synthetic build, the truth's; a figure or number whose stage
    has not run says "not built yet". On a synthetic build, also the accuracy against the truth.
    Exit status 1 (after writing the page) when a figure that has its data failed to draw.

    Example: mgold report html -w demo/warehouse.duckdb --out demo/report
    """
    rep = write_report(warehouse, out)
    if rep.failed:
        raise typer.Exit(1)


def write_report(warehouse: Path, out: Path, headline: bool = False):
    """Render the HTML report of ``warehouse`` into ``out``; print its summary (and, with ``headline``,
    every headline number mgold measured beside the paper's). Returns the Report."""
    from ..evaluate.html import NOT_BUILT, render

    with reading(warehouse) as con:
        rep = render(con, out)
    drawn = sum(s == "drawn" for s in rep.figures.values())
    numbers = sum(r.mgold != NOT_BUILT for r in rep.headline)
    if headline:
        rows = [(r.section, r.quantity, r.paper, r.mgold) for r in rep.headline if r.mgold != NOT_BUILT]
        typer.echo("\nheadline figures (paper | mgold):\n" + _table(("§", "quantity", "paper", "mgold"), rows))
    typer.echo(f"{drawn} of {len(rep.figures)} figures drawn, {numbers} of {len(rep.headline)} headline numbers "
               f"measured; accuracy: {', '.join(rep.accuracy) or 'skipped'}")
    typer.echo(f"wrote {rep.index}")
    for n, status in rep.failed.items():
        typer.echo(f"mgold: error: Fig. {n}: {status}", err=True)
    return rep


def _fmt(param: str, v) -> str:
    return "" if v is None else (f"{v:+.0f}" if param == "teff_k" else f"{v:+.3f}")


@app.command("laspm")
def laspm_cmd(warehouse: Warehouse = DEFAULT_WAREHOUSE) -> None:
    """LASPM's figures beside the paper's (§4): how many spectra each library parameterised (RVs fitted,
    edge-of-library and poor fits), the repeat precision for S/N >= 10 (Fig. 17, paper 67 K / 0.07 /
    0.14 dex, its predecessor 118 K / 0.20 / 0.29) and by S/N (Fig. 16), the comparisons with StarHorse
    (§4.3) and APOGEE (§4.4), and on a synthetic build the accuracy against the truth.

    Example: mgold report laspm -w demo/warehouse.duckdb
    """
    from .. import report as R
    from ..evaluate import laspm as E

    _trio = R.trio_text
    with reading(warehouse) as con:
        have = {t for (t,) in con.execute("select table_name from duckdb_tables() where schema_name = 'main'").fetchall()}
        if "lsp_results" not in have:
            fail(f"{warehouse}: LASPM has not run (lsp_results missing): mgold build, or mgold laspm run --library L")
        out = ["LASPM result sets", _table(("library", "spectra", "fitted", "RV fitted", "edge", "poor fit",
                                            "median chi2_nu"),
                                           [tuple(r.values()) for r in R.summary(con)])]
        if "lsp_precision" in have:
            rows = R.precision(con)
            out += ["\nrepeat precision, S/N_i >= 10 (paper §4.2, Fig. 17): sigma of epsilon (1.4826 MAD), std",
                    f"  paper: golden-sample LASPM {_trio(R.PAPER['precision'])}; predecessor "
                    f"{_trio(R.PAPER['precision_predecessor'])}",
                    _table(("library", "param", "n", "sigma", "std"), [tuple(r.values()) for r in rows])]
            libs = sorted({r["library"] for r in rows})
            for lib in libs:
                by = R.precision_by_snr(con, lib)
                out += [f"\nprecision by S/N_i step (Fig. 16), {lib}: sigma of epsilon",
                        _table(("S/N_i from", "visits", "teff_k", "logg_dex", "mh_dex"),
                               [tuple(r.values()) for r in by])]
        if "lsp_vs_starhorse" in have:
            out += [f"\nLASPM - StarHorse, S/N_i > 10 (§4.3): paper bias {_trio(R.PAPER['starhorse_bias'])}, "
                    f"scatter {_trio(R.PAPER['starhorse_scatter'])}",
                    _table(("library", "param", "n", "stars", "bias", "scatter"),
                           [tuple(r.values()) for r in R.vs_starhorse(con)])]
        if "lsp_vs_apogee" in have:
            out += [f"\nLASPM - APOGEE (shifted by the measured ASPCAP offsets), STARFLAG = 0, S/N_i > 10 (§4.4): "
                    f"paper scatter dwarfs {_trio(R.PAPER['apogee_dwarf_scatter'])}, giants "
                    f"{_trio(R.PAPER['apogee_giant_scatter'])}",
                    _table(("library", "class", "param", "n", "stars", "bias", "scatter"),
                           [tuple(r.values()) for r in R.vs_apogee(con)])]
        if E.has_truth(con):
            acc = E.accuracy(con)
            out += ["\naccuracy vs synthetic truth (defect-free spectra): median and 1.4826 MAD of LASPM - truth",
                    _table(("library", "param", "class", "S/N", "n", "bias", "scatter"),
                           [(r["library"], r["param"], r["class"] or "all", r["snr_bin"] or "all", r["n"],
                             _fmt(r["param"], r["bias"]), _fmt(r["param"], r["scatter"]).lstrip("+"))
                            for r in acc])]
            rv = E.fitted_rv(con)
            if rv:
                out += ["\nRVs fitted where the header had none (LAMOST -9999): fitted - true",
                        _table(("library", "n", "bias km/s", "scatter km/s", "flagged poor"),
                               [tuple(r.values()) for r in rv])]
    typer.echo("\n".join(out))


@app.command("golden")
def golden_cmd(warehouse: Warehouse = DEFAULT_WAREHOUSE) -> None:
    """The golden sample's figures beside the paper's: its size and sources (§3.2), the NN cleaning
    (§2.5: held-out scatter vs 14 K / 0.06 / 0.05 dex, stars removed vs 27 of 5,132), the leave-one-out
    (§3.1: scatter vs 11 K / 0.05 / 0.05 dex) with the edge table of Fig. 9, the same leave-one-out on the
    real MILES K/M stars (when ingested), and on a synthetic build the golden labels vs truth and how many
    truly defective spectra reached the sample.

    Example: mgold report golden -w demo/warehouse.duckdb
    """
    from ..evaluate.golden import format_golden, golden_report
    from ..evaluate.relations import unmet

    with reading(warehouse) as con:
        missing = unmet(con, ("gold_sample", "gold_loo", "cln_nn_folds", "cln_nn_predictions"))
        if missing:
            fail(f"{warehouse}: golden layer not built ({', '.join(missing)}); run `mgold build`")
        text = format_golden(golden_report(con))
    typer.echo(text)
