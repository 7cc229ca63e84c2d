"""`mgold sql`: run, status, test, show and query the versioned SQL models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import UsageError
from ._common import DEFAULT_WAREHOUSE, Sets, Wait, Warehouse, config, fail, reading, writing

app = typer.Typer(help="Versioned SQL models: run, status, test, show, query.", no_args_is_help=True)

Select = Annotated[str | None, typer.Option(
    "--select", "-s", help="Models: NAME, NAME+ (and downstream), +NAME (and upstream), "
                           "layer:LAYER; several separated by commas.")]
MAX_CELL = 40


def _cell(v) -> str:
    s = "" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))
    return s if len(s) <= MAX_CELL else s[:MAX_CELL - 1] + "…"


def _table(columns: list[str], rows: list[tuple]) -> str:
    cells = [[_cell(v) for v in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    fmt = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(columns), fmt(["-" * w for w in widths])] + [fmt(r) for r in cells])


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if text and text.strip() else ""


@app.command("run")
def run_cmd(
    warehouse: Warehouse = DEFAULT_WAREHOUSE,
    select: Select = None,
    full_refresh: Annotated[bool, typer.Option("--full-refresh", help="Rebuild even fresh models.")] = False,
    set_: Sets = None,
    wait: Wait = False,
) -> None:
    """Build the selected models that are stale (changed SQL or code, upstream, used config
    value or landing source), in dependency order; one line per model on stderr. Exits 1
    when a model failed (its previous table is kept; downstream is skipped).

    Example: mgold sql run -w w.duckdb --select stg_gaia+ --set select.snr_i_min=15
    """
    from ..runner import Project, run, select_models

    cfg = config(set_)
    project = Project.load()
    try:
        select_models(project.models, select)
    except ValueError as e:
        raise UsageError(str(e)) from None

    def echo(r) -> None:
        rows = "" if r.rows is None else f"{r.rows} rows"
        why = _first_line(r.error) if r.status == "failed" else (r.reason or "")
        typer.echo(f"{r.status:>7}  {r.layer:<8} {r.name:<28} {rows:>12} {r.seconds:7.2f}s  {why}",
                   err=True)

    with writing(warehouse, wait) as con:
        results = run(con, project, cfg, select=select, full_refresh=full_refresh, on_event=echo)
    counts = {s: sum(r.status == s for r in results) for s in ("built", "fresh", "failed", "skipped")}
    typer.echo(", ".join(f"{n} {s}" for s, n in counts.items()))
    if counts["failed"]:
        failed = next(r for r in results if r.status == "failed")
        fail(f"{counts['failed']} model(s) failed; first: {_first_line(failed.error)}")


@app.command()
def status(
    warehouse: Warehouse = DEFAULT_WAREHOUSE,
    set_: Sets = None,
) -> None:
    """List every model with its last build and whether it is stale now (and why).

    Example: mgold sql status -w w.duckdb
    """
    from ..doctor import changed_data_files
    from ..runner import Project, model_states

    cfg = config(set_)
    project = Project.load()
    with reading(warehouse) as con:
        states = model_states(con, project, cfg)
        changed = changed_data_files(con, checksums=False)
    for problem in changed:
        typer.echo(f"WARNING: {problem} (run `mgold doctor -w {warehouse}`)", err=True)
    if not states:
        typer.echo("no models found")
        return
    rows = [(s.name, s.layer, s.kind, s.last_status, s.rows,
             s.last_run.strftime("%Y-%m-%d %H:%M:%S") if s.last_run else None,
             "yes" if s.stale else "no", _first_line(s.reason)) for s in states]
    typer.echo(_table(["model", "layer", "kind", "last status", "rows", "last run", "stale?", "reason"],
                      rows))


@app.command("test")
def test_cmd(
    warehouse: Warehouse = DEFAULT_WAREHOUSE,
    select: Select = None,
    set_: Sets = None,
) -> None:
    """Run the declarative header tests (unique, not_null, range, accepted) and the
    audits in sql/audits/. A check passes when it returns no rows; exits 1 when any
    check returns rows or cannot run, printing the count and first offending rows.

    Example: mgold sql test -w w.duckdb --select layer:labels
    """
    from ..runner import Project, run_tests

    cfg = config(set_)
    project = Project.load()
    with reading(warehouse) as con:
        try:
            results = run_tests(con, project, select=select, cfg=cfg)
        except ValueError as e:
            raise UsageError(str(e)) from None
    failed = [r for r in results if not r.passed]
    for r in results:
        where = f"{r.model}: {r.name}" if r.model else f"audit {r.name}"
        if r.passed:
            typer.echo(f"pass  {where}")
        elif r.error:
            typer.echo(f"FAIL  {where}: {_first_line(r.error)}")
        else:
            typer.echo(f"FAIL  {where}: {r.rows} offending row(s)")
            typer.echo("      " + _table(r.columns or [], r.sample or []).replace("\n", "\n      "))
    typer.echo(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed:
        raise typer.Exit(1)


@app.command()
def show(
    model: Annotated[str, typer.Argument(help="Model name, e.g. stg_gaia.")],
    warehouse: Warehouse = DEFAULT_WAREHOUSE,
    set_: Sets = None,
) -> None:
    """Show one model: header, the config values it uses, upstream and downstream
    lineage, and its last run.

    Example: mgold sql show lbl_offsets -w w.duckdb
    """
    from ..runner import Project, closure, lineage, model_states

    cfg = config(set_)
    project = Project.load()
    models = project.models
    if model not in models:
        import difflib
        near = difflib.get_close_matches(model, list(models), n=3)
        raise UsageError(f"unknown model {model!r}" + (f" (did you mean {', '.join(near)}?)" if near else ""))
    m = models[model]
    up, down = lineage(models)
    flat = cfg.flat()
    out = [f"{m.name}  ({m.layer}, {m.kind}{', python' if m.is_python else ''})",
           f"  file:        {m.path}", f"  description: {m.description}", f"  grain:       {m.grain}",
           f"  tests:       {'; '.join(map(str, m.tests)) or '-'}"]
    if m.error:
        out.append(f"  ERROR:       {m.error}")
    out.append("  params:" + ("" if m.params else " -"))
    out += [f"    {k} = {flat.get(k)!r}" for k in m.params]
    out.append(f"  upstream:    {', '.join(sorted(m.depends_on)) or '-'}")
    all_up = sorted(closure(m.depends_on, up) - set(m.depends_on))
    if all_up:
        out.append(f"    (transitively: {', '.join(all_up)})")
    out.append(f"  downstream:  {', '.join(sorted(down[m.name])) or '-'}")
    all_down = sorted(closure(down[m.name], down) - down[m.name])
    if all_down:
        out.append(f"    (transitively: {', '.join(all_down)})")
    with reading(warehouse) as con:
        st = next(s for s in model_states(con, project, cfg) if s.name == m.name)
    out.append(f"  last run:    {st.last_status or 'never'}"
               + (f" at {st.last_run:%Y-%m-%d %H:%M:%S} (run {st.run_id})"
                  + (f", {st.rows} rows" if st.rows is not None else "")
                  if st.last_run else ""))
    out.append(f"  stale:       {'yes: ' + _first_line(st.reason) if st.stale else 'no'}")
    typer.echo("\n".join(out))


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="One SELECT (or EXPLAIN) statement; models live in the main schema.")],
    warehouse: Warehouse = DEFAULT_WAREHOUSE,
    csv: Annotated[Path | None, typer.Option(help="Write the result to this CSV file (- for stdout).")] = None,
    parquet: Annotated[Path | None, typer.Option(help="Write the result to this Parquet file.")] = None,
    limit: Annotated[int, typer.Option(help="Rows printed to the terminal (files get all).")] = 50,
    set_: Sets = None,
) -> None:
    """Run ad-hoc SQL against the warehouse, read-only: one SELECT / EXPLAIN statement
    (COPY, ATTACH, CREATE, SET, ... are refused, so the query can write nothing, in the
    warehouse or on disk), config values bound as getvariable('section.key'); print a table
    or write CSV / Parquet (mgold writes that file itself, never inside the warehouse's
    files). The spectral UDFs (rv_shift, resample, rest_frame_resample, sed_recalibrate)
    are available when the query calls them.

    Example: mgold sql query "select data_v, count(*) from landing.lamost_headers group by 1" -w w.duckdb
    """
    from mgold.udfs import calls_udf

    from ..adhoc import check_read_only, output_path_allowed, write_result
    from ..runner import bind_config

    if csv and parquet:
        raise UsageError("give at most one of --csv and --parquet")
    cfg = config(set_)
    target = csv or parquet
    if target is not None and str(target) != "-":
        output_path_allowed(target, warehouse)
    with reading(warehouse) as con:
        check_read_only(con, sql)
        bind_config(con, cfg)
        if calls_udf(sql):
            from mgold.udfs.register import register_udfs

            sp = cfg.spectra
            register_udfs(con, sp.sedcal_poly_order, sp.sedcal_clip_nsigma, sp.sedcal_iterations)
            if "laspm_fit" in sql.lower():
                from ..stages.laspm import register_laspm_udf

                register_laspm_udf(con, cfg)
        try:
            rel = con.sql(sql)
            if target is not None:
                n = write_result(rel, target, "csv" if csv else "parquet")
                if str(target) != "-":
                    typer.echo(f"wrote {n} rows to {target}")
                return
            columns = list(rel.columns)
            rows = rel.limit(limit + 1).fetchall()
        except Exception as e:  # noqa: BLE001 - any SQL error is one line for the user
            fail(_first_line(str(e)))
    typer.echo(_table(columns, rows[:limit]))
    if len(rows) > limit:
        typer.echo(f"... (first {limit} rows; --limit N for more, --csv/--parquet for all)")
