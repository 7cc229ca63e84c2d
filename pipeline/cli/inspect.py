"""`mgold inspect`: the manual-inspection queue of the cleaning stage (paper §2.4)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import DEFAULT_WAREHOUSE, Sets, Wait, Warehouse, config, fail, reading, writing

app = typer.Typer(help="Manual inspection of bins DBSCAN could not settle: list, show, decide, accept-suggestions, "
                       "figure.",
                  no_args_is_help=True)

Bin = Annotated[str, typer.Argument(help="Bin id as listed by `mgold inspect list`, e.g. t3550_g4.70_m-0.40.")]


def _guard(fn, *args, **kwargs):
    from ..inspect import InspectError

    try:
        return fn(*args, **kwargs)
    except InspectError as e:
        fail(str(e))


@app.command("list")
def list_cmd(warehouse: Warehouse = DEFAULT_WAREHOUSE,
             all_: Annotated[bool, typer.Option("--all", help="Also list bins already decided or settled by "
                                                             "suggestions.")] = False,
             sort: Annotated[str, typer.Option("--sort", help="status (pending first), confidence (no suggestion "
                                                             "first, then the least confident) or bin.")] = "status"
             ) -> None:
    """List the bins waiting for a person: bin, reason (single_sample | no_cluster), number of
    spectra, status (pending | suggested | decided), the confident suggestions (keep / all) and
    the bin's least confident suggestion. Bins whose every spectrum has a suggestion of at least
    clean.suggestion_min_confidence are settled by them (status suggested) and shown with --all.

    Example: mgold inspect list -w demo/warehouse.duckdb --sort confidence
    """
    from ..inspect import queue
    from .sql import _table

    with reading(warehouse) as con:
        rows = _guard(queue, con, sort)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("pending", "suggested", "decided")}
    rows = [r for r in rows if all_ or r["status"] == "pending"]
    cols = ["bin_id", "reason", "n_spectra", "status", "suggested", "confidence", "obsids"]
    typer.echo(_table(cols, [(r["bin_id"], r["reason"], r["n_spectra"], r["status"],
                              f"{r['n_suggested_keep']} keep / {r['n_suggested']}",
                              None if r["confidence"] is None else f"{r['confidence']:.3f}", r["obsids"])
                             for r in rows]))
    typer.echo(f"{len(rows)} bin(s); {counts['pending']} pending (the manual queue), {counts['suggested']} settled "
               f"by suggestions, {counts['decided']} decided by a person")


@app.command("show")
def show_cmd(bin_id: Bin, warehouse: Warehouse = DEFAULT_WAREHOUSE,
             out: Annotated[Path | None, typer.Option("--out", "-o", help="PNG to write (default BIN.png).")] = None
             ) -> None:
    """Plot one bin's spectra (normalised; gray = all, red = cluster members, bold = kept)
    with their obsid, S/N and labels, to a PNG; below them, for a queued bin, its spectra beside
    the kept spectra of the neighbouring bins they were compared with, and each suggestion
    with its confidence and nearest references.

    Example: mgold inspect show t3550_g4.70_m-0.40 -w demo/warehouse.duckdb --out bin.png
    """
    from ..inspect import plot_bin, suggestions_of

    with reading(warehouse) as con:
        path = _guard(plot_bin, con, bin_id, out or Path(f"{bin_id}.png"))
        for r in suggestions_of(con, bin_id):
            verdict = (f"{r['suggestion']} (confidence {r['confidence']:.3f})" if r["suggestion"]
                       else "no suggestion")
            typer.echo(f"{r['obsid']}: {verdict}" + (f" - {r['note']}" if r["note"] else ""))
    typer.echo(f"wrote {path}")


@app.command("accept-suggestions")
def accept_cmd(warehouse: Warehouse = DEFAULT_WAREHOUSE,
               min_confidence: Annotated[float, typer.Option("--min-confidence", help="Record the suggestions at "
                                                             "least this confident (0.5-1).")] = 0.9,
               undo: Annotated[bool, typer.Option("--undo", help="Delete every decision recorded from a "
                                                                "suggestion instead.")] = False,
               wait: Wait = False) -> None:
    """Record the suggestions of cln_suggestions at least --min-confidence confident as decisions
    (landing.inspection_decisions, suggested = true), in bulk. A person's decision is never
    overwritten and a later one replaces the suggestion; --undo deletes them all. The next build
    respects them like any decision.

    Example: mgold inspect accept-suggestions -w demo/warehouse.duckdb --min-confidence 0.95
    """
    from ..inspect import accept_suggestions, undo_suggestions

    with writing(warehouse, wait) as con:
        if undo:
            n = _guard(undo_suggestions, con)
            typer.echo(f"deleted {n} decision(s) recorded from suggestions; run `mgold build` to apply")
            return
        keeps, rejects = _guard(accept_suggestions, con, min_confidence)
    typer.echo(f"recorded {keeps + rejects} suggested decision(s) ({keeps} keep, {rejects} reject) of confidence "
               f">= {min_confidence:g}; run `mgold build` (or `mgold sql run`) to apply them")


@app.command("decide")
def decide_cmd(bin_id: Bin, warehouse: Warehouse = DEFAULT_WAREHOUSE,
               keep: Annotated[list[int] | None, typer.Option("--keep", help="obsid to keep (repeatable).")] = None,
               reject: Annotated[list[int] | None, typer.Option("--reject", help="obsid to reject (repeatable).")] = None,
               note: Annotated[str, typer.Option("--note", help="Why (stored with the decision).")] = "",
               wait: Wait = False) -> None:
    """Record decisions for spectra of one bin; the next build keeps / drops them in cln_kept.

    Example: mgold inspect decide t3550_g4.70_m-0.40 -w demo/warehouse.duckdb --keep 123456 --reject 654321
    """
    from ..inspect import decide

    if not keep and not reject:
        fail("give at least one --keep OBSID or --reject OBSID", code=2)
    with writing(warehouse, wait) as con:
        n = _guard(decide, con, bin_id, keep or [], reject or [], note)
    typer.echo(f"recorded {n} decision(s) for {bin_id}; run `mgold build` (or `mgold sql run`) to apply them")


@app.command("figure")
def figure_cmd(warehouse: Warehouse = DEFAULT_WAREHOUSE,
               out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write.")] = Path("eps_figure.png"),
               bin_id: Annotated[str | None, typer.Option("--bin", help="Bin (default: the most populated).")] = None,
               set_: Sets = None) -> None:
    """Paper Fig. 6 on this warehouse: one populated bin clustered with eps = clean.dbscan_eps
    (top) and clean.figure_eps_alt (bottom); cluster members in red.

    Example: mgold inspect figure -w demo/warehouse.duckdb --out fig6.png
    """
    from ..eps_figure import eps_figure
    from ..runner import recorded_config

    with reading(warehouse) as con:
        cfg = config(set_, recorded_config(con, "cln_dbscan"))     # the clean layer's own config, then --set
        path, summary = _guard(eps_figure, con, out, cfg, bin_id)
    typer.echo(summary)
    typer.echo(f"wrote {path}")
