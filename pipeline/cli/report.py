"""`mgold report`: figures of a built warehouse."""

from __future__ import annotations

from pathlib import Path

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


def _val(param: str, v) -> str:
    return "" if v is None else (f"{v:+.1f}" if param == "teff_k" else f"{v:+.3f}")


def _verdict(meets: bool, se_limited: bool, measured: bool = True) -> str:
    if not measured:
        return "not measured"
    return ("meets" if meets else "MISSES") + (" (se > target)" if se_limited else "")


def _labels_accuracy(ev: dict) -> str:
    """The accuracy section of `report labels` (figures from pipeline/evaluate/labels.py)."""
    ot, bt = ev["offset_target"], ev["bias_target"]
    lines = [f"accuracy vs synthetic truth ({ev['n_with_truth']:,} of {ev['n_labelled']:,} labelled stars "
             "in truth.stars)",
             f"\nrecovered offset - injected, se = sigma/sqrt(n); target |diff| <= {ot['teff_k']:g} K / "
             f"{ot['logg_dex']:g} / {ot['mh_dex']:g} dex"]
    rows = [(r["catalog"], r["class"], r["param"], r["n"], _val(r["param"], r["recovered"]),
             _val(r["param"], r["injected"]), _val(r["param"], r["diff"]), _val(r["param"], r["se"]).lstrip("+"),
             _verdict(r["meets"], r["se_limited"], r["measured"])) for r in ev["offsets"]]
    lines.append(_table(("catalog", "class", "param", "n", "recovered", "injected", "diff", "se", "verdict"), rows))
    lines.append(f"\nlabelled sample - truth: bias +- se (scatter), se including the offsets' shared error; "
                 f"target |bias| <= {bt['teff_k']:g} K / {bt['logg_dex']:g} / {bt['mh_dex']:g} dex")
    rows = []
    for g in ev["bias"]:
        cells = [f"{_val(p, v['bias'])} +- {_val(p, v['se']).lstrip('+')} ({_val(p, v['scatter']).lstrip('+')})"
                 for p, v in g["params"].items()]
        rows.append((g["by"], g["group"], g["n"], *cells, _verdict(g["meets"], g["se_limited"])))
    lines.append(_table(("by", "group", "n", "teff_k", "logg_dex", "mh_dex", "verdict"), rows))
    lines.append("")
    for sample, mism in ev["class_mismatches"].items():
        lines.append(f"class mismatches, {sample} sample: "
                     + (", ".join(f"{k} {n}" for k, n in mism.items()) if mism else "none"))
    return "\n".join(lines)


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
