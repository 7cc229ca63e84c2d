"""``mgold report html``: the paper's figures and headline numbers of a built warehouse, as one page.

``render(con, out_dir)`` writes ``out_dir/index.html`` and one PNG per figure it can draw. The
page needs nothing but those files (inline CSS, no JavaScript) and reflows from a phone to a
laptop. Three parts:

- the headline table ``quantity | paper | mgold | truth (synthetic)``: every number the paper
  quotes (``HEADLINES``, each with its section), mgold's value read from the warehouse where the
  stage that makes it ran, "not built yet" where it did not, and on a synthetic build what the
  universe injected or how much of the result is truly defective;
- the figures of pipeline/evaluate/figures.py (``FIGURES``); one whose relations are missing or
  empty is a short "not built yet" card, one that fails is a card with the one-line cause;
- on a synthetic build, the accuracy against ``truth.*`` (pipeline/evaluate/labels.py and
  clean.py): evaluation code, which only this package may run.

A later stage adds its figure to ``FIGURES`` and its numbers to ``HEADLINES`` (with the
relations they need); nothing else changes.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Config
from ..report import NOT_BUILT, PAPER
from ..report import trio_text as _trio_text
from ..paper import PAPER_OFFSETS
from ..runner import recorded_config
from .figures import FIGURES, Figure
from .relations import relation_state, unmet  # noqa: F401 - part of this module's interface



# --------------------------------------------------------------------------- headline numbers

def _first(con, sql: str, params: list | None = None):
    row = con.execute(sql, params or []).fetchone()
    return None if row is None else row[0]


def _count(sql: str, params: list | None = None) -> Callable:
    return lambda con: f"{_first(con, sql, params):,}"


def _offset(cat: str, cls: str, param: str) -> Callable:
    def value(con) -> str:
        row = con.execute("select mean::double, sigma::double, n from lbl_offsets "
                          "where catalog = ? and class = ? and param = ?",
                          [cat, cls, param]).fetchone()
        if row is None:
            return "not measured (no matched stars)"
        mean, sigma, n = row
        if mean is None:
            return f"not measured (n {n})"
        fmt = ".0f" if param == "teff_k" else ".2f"
        se = f" ± {sigma / n ** 0.5:{fmt}}" if sigma and n else ""
        return f"{mean:+{fmt}}{se} (n {n:,})"
    return value


def _injected(cat: str, cls: str, param: str) -> Callable:
    def value(con) -> str | None:
        v = _first(con, "select offset_value::double from truth.injected_offsets where catalog = ? and class = ? "
                        "and param = ?", [cat, cls, param])
        return None if v is None else (f"{v:+.0f}" if param == "teff_k" else f"{v:+.2f}") + " injected"
    return value


def _box_width(cls: str) -> Callable:
    return lambda con: f"{_first(con, 'select width_mag from sel_cmd_fit where class = ?', [cls]):.2f} mag"


def _defective(relation: str) -> Callable:
    """How many spectra of ``relation`` carry an injected defect the cleaning must catch (evaluate/clean.py CAUGHT)."""
    def value(con) -> str:
        from .clean import CAUGHT

        n, bad = con.execute(f"""select count(*), count(*) filter (where list_contains(?, t.defect))
                                 from {relation} k left join truth.spectra t using (obsid)""",
                             [list(CAUGHT)]).fetchone()
        return f"{bad:,} of {n:,} truly defective ({bad / n:.1%})" if n else "—"
    return value


@dataclass(frozen=True)
class Headline:
    section: str
    quantity: str
    paper: str
    needs: tuple[str, ...] = ()                   # relations mgold's value reads (truth.* for the truth column)
    mgold: Callable | None = None                 # con -> str; None: the stage that makes it is not written yet
    truth: Callable | None = None                 # con -> str | None, on a synthetic build
    truth_needs: tuple[str, ...] = ()


NAMES = {"aspcap": "ASPCAP", "qiu23": "Qiu23", "ding22": "Ding22", "laspm": "LASPM",
         "teff_k": "Teff (K)", "logg_dex": "log g (dex)", "mh_dex": "[M/H] (dex)"}
GOLDEN = ("gold_sample",)
NN = ("cln_nn_predictions", "cln_nn_folds")
LABELLED = ("lbl_labelled_sample",)


def _trio(sql: str, params: list | None = None) -> Callable:
    """A headline value from a query of (param, value) rows."""
    def value(con) -> str:
        got = dict(con.execute(sql, params or []).fetchall())
        return _trio_text(tuple(got.get(p) for p in ("teff_k", "logg_dex", "mh_dex")))
    return value


def _laspm_truth(library: str) -> Callable:
    def value(con) -> str:
        from .laspm import accuracy

        rows = [r for r in accuracy(con) if r["library"] == library and r["class"] is None and r["snr_bin"] is None]
        got = {r["param"]: r["scatter"] for r in rows}
        return "scatter vs truth " + _trio_text(tuple(got.get(p) for p in ("teff_k", "logg_dex", "mh_dex")))
    return value


PRECISION_SQL = "select param, sigma from lsp_precision where library = ? and snr_lo is null"


def _nn_removed(con) -> str:
    from .golden import nn_report

    r = nn_report(con)
    return f"{r['n_removed']:,} of {r['n_entered']:,} ({r['removed_fraction']:.2%})"


def _nn_scatter(con) -> str:
    from .golden import nn_report

    sc = nn_report(con)["scatter"]
    return _trio_text(tuple(sc[p]["robust_sigma"] for p in ("teff_k", "logg_dex", "mh_dex")))


def _loo_scatter(con) -> str:
    from .golden import loo_report

    rows = {r["group"]: r for r in loo_report(con, recorded_config(con, "gold_loo"))["rows"]}
    return _trio_text(tuple(rows["all"][p]["scatter"] for p in ("teff_k", "logg_dex", "mh_dex")))


def _loo_truth(con) -> str:
    from .golden import truth_report

    rows = {r["group"]: r for r in truth_report(con)["loo"]}
    return "derived - truth scatter " + _trio_text(tuple(rows["all"][p]["scatter"] for p in ("teff_k", "logg_dex",
                                                                                          "mh_dex")))


def _miles_loo(con) -> str:
    """Real-spectra accuracy (no paper figure): leave-one-out on the ingested MILES K/M stars, per class."""
    from .golden import LABELS, library_loo

    m = library_loo(con, recorded_config(con, "gold_loo"))
    if m is None:
        return "MILES not ingested (mgold ingest library miles PATH -w W)"
    rows = {r["group"]: r for r in m["rows"]}
    return "; ".join(f"{rows[c]['n']} {c}s: bias " + _trio_text(tuple(rows[c][p]["bias"] for p in LABELS))
                     + ", scatter " + _trio_text(tuple(rows[c][p]["scatter"] for p in LABELS))
                     for c in ("dwarf", "giant") if c in rows) or "no MILES star with labels"


def _golden_sources(con) -> str:
    got = dict(con.execute("select label_source, count(*) from gold_sample group by 1").fetchall())
    return " / ".join(f"{got.get(k, 0):,}" for k in ("aspcap", "qiu23", "ding22", "laspm"))


def _source_count(source: str) -> Callable:
    return _count("select count(*) from lbl_labelled_sample where label_source = ?", [source])


HEADLINES: tuple[Headline, ...] = (
    Headline("§2.1.1", "CMD box half-width, dwarfs", "0.8 mag", ("sel_cmd_fit",), _box_width("dwarf")),
    Headline("§2.1.2", "CMD box half-width, giants", "0.8 mag", ("sel_cmd_fit",), _box_width("giant")),
    *(Headline("§2.2, Figs 3-4", f"offset {NAMES[c]} - StarHorse, {k}s, {NAMES[p]}", v, ("lbl_offsets",),
               _offset(c, k, p), _injected(c, k, p), ("truth.injected_offsets",))
      for (c, k, p), v in PAPER_OFFSETS.items()),
    Headline("§2.2.3", "supplement stars added", "160", LABELLED,
             _count("select count(*) from lbl_labelled_sample where is_supplement")),
    Headline("§2.2", "labelled sample, total", "45,422", LABELLED, _count("select count(*) from lbl_labelled_sample")),
    Headline("§2.2", "labelled from ASPCAP", "4,191", LABELLED, _source_count("aspcap")),
    Headline("§2.2", "labelled from Qiu23", "2,625", LABELLED, _source_count("qiu23")),
    Headline("§2.2", "labelled from Ding22", "24,397", LABELLED, _source_count("ding22")),
    Headline("§2.2", "labelled from LASPM", "14,209", LABELLED, _source_count("laspm")),
    Headline("§2.4", "kept after DBSCAN and inspection", "5,132", ("cln_kept",),
             _count("select count(*) from cln_kept"), _defective("cln_kept"), ("truth.spectra",)),
    Headline("§2.5", "removed by the NN cleaning", "27 of 5,132 (0.53%)", NN, _nn_removed,
             _defective("(select distinct obsid from cln_nn_predictions where removed)"), ("truth.spectra",)),
    Headline("§2.5", "NN test-set scatter, Teff / log g / [M/H]", "14 K / 0.06 / 0.05 dex", NN, _nn_scatter),
    Headline("§3.1", "leave-one-out scatter, Teff / log g / [M/H]", "11 K / 0.05 / 0.05 dex", ("gold_loo",),
             _loo_scatter, _loo_truth, ("truth.spectra", "truth.stars")),
    Headline("§3.1 (real spectra)", "leave-one-out on the MILES K/M stars - MILES labels", "(not in the paper)",
             ("gold_loo",), _miles_loo),
    Headline("§3.2", "golden sample", "5,105", GOLDEN, _count("select count(*) from gold_sample"),
             _defective("gold_sample"), ("truth.spectra",)),
    Headline("§3.2", "golden from ASPCAP / Qiu23 / Ding22 / LASPM", "881 / 1,395 / 1,651 / 1,178", GOLDEN,
             _golden_sources),
    Headline("§4", "M spectra parameterised by LASPM (golden library)", "898,350", ("lsp_results",),
             _count("select count(*) from lsp_results where library = 'golden' and flags & 32 = 0")),
    Headline("§4.2", "repeat precision (S/N ≥ 10), Teff / log g / [M/H]", _trio_text(PAPER["precision"]),
             ("lsp_precision",), _trio(PRECISION_SQL, ["golden"]), _laspm_truth("golden"), ("truth.spectra",)),
    Headline("§4.2", "predecessor's precision (model-grid library), Teff / log g / [M/H]",
             _trio_text(PAPER["precision_predecessor"]), ("lsp_precision",), _trio(PRECISION_SQL, ["model_grid"]),
             _laspm_truth("model_grid"), ("truth.spectra",)),
    Headline("§4.3", "LASPM - StarHorse bias, Teff / log g / [M/H]", _trio_text(PAPER["starhorse_bias"]),
             ("lsp_vs_starhorse",), _trio("select param, bias from lsp_vs_starhorse where library = 'golden'")),
    Headline("§4.3", "LASPM - StarHorse scatter, Teff / log g / [M/H]", _trio_text(PAPER["starhorse_scatter"]),
             ("lsp_vs_starhorse",), _trio("select param, scatter from lsp_vs_starhorse where library = 'golden'")),
    Headline("§4.4", "LASPM - APOGEE scatter, dwarfs", _trio_text(PAPER["apogee_dwarf_scatter"]), ("lsp_vs_apogee",),
             _trio("select param, scatter from lsp_vs_apogee where library = 'golden' and class = 'dwarf'")),
    Headline("§4.4", "LASPM - APOGEE scatter, giants", _trio_text(PAPER["apogee_giant_scatter"]), ("lsp_vs_apogee",),
             _trio("select param, scatter from lsp_vs_apogee where library = 'golden' and class = 'giant'")),
)


@dataclass(frozen=True)
class HeadlineRow:
    section: str
    quantity: str
    paper: str
    mgold: str
    truth: str
    needs: str = ""           # what is missing, when mgold is "not built yet"


def _cell(fn: Callable | None, con, needs: tuple[str, ...]) -> tuple[str | None, str]:
    if fn is None:
        return None, ", ".join(needs)
    missing = unmet(con, needs)
    if missing:
        return None, ", ".join(missing)
    try:
        return fn(con), ""
    except Exception as e:  # noqa: BLE001 - one bad number must not cost the page
        return f"error: {type(e).__name__}: {str(e).splitlines()[0]}", ""


def headline_rows(con, headlines: tuple[Headline, ...] | None = None) -> list[HeadlineRow]:
    """Every headline (default ``HEADLINES``) with mgold's and the truth's value (or why there is none)."""
    out = []
    for h in HEADLINES if headlines is None else headlines:
        value, missing = _cell(h.mgold, con, h.needs)
        truth, _ = _cell(h.truth, con, h.truth_needs) if h.truth else (None, "")
        out.append(HeadlineRow(h.section, h.quantity, h.paper, NOT_BUILT if value is None else value,
                               truth or "—", missing))
    return out


# --------------------------------------------------------------------------- accuracy vs truth

@dataclass(frozen=True)
class Table:
    title: str
    columns: tuple[str, ...]
    rows: list[tuple]


def _val(param: str, v) -> str:
    return "" if v is None else (f"{v:+.1f}" if param == "teff_k" else f"{v:+.3f}")


def _verdict(meets: bool, se_limited: bool, measured: bool = True) -> str:
    if not measured:
        return "not measured"
    return ("meets" if meets else "MISSES") + (" (se > target)" if se_limited else "")


def labels_accuracy_tables(ev: dict) -> tuple[str, list[Table], list[str]]:
    """The label-transfer accuracy of pipeline/evaluate/labels.py ``evaluate`` as a heading, two
    tables (recovered vs injected offsets; labelled sample - truth) and the class-mismatch lines:
    what `mgold report labels` prints and the HTML report shows."""
    ot, bt = ev["offset_target"], ev["bias_target"]
    heading = (f"accuracy vs synthetic truth ({ev['n_with_truth']:,} of {ev['n_labelled']:,} labelled stars "
               "in truth.stars)")
    offsets = Table(
        f"recovered offset - injected, se = sigma/sqrt(n); target |diff| <= {ot['teff_k']:g} K / "
        f"{ot['logg_dex']:g} / {ot['mh_dex']:g} dex",
        ("catalog", "class", "param", "n", "recovered", "injected", "diff", "se", "verdict"),
        [(r["catalog"], r["class"], r["param"], r["n"], _val(r["param"], r["recovered"]),
          _val(r["param"], r["injected"]), _val(r["param"], r["diff"]), _val(r["param"], r["se"]).lstrip("+"),
          _verdict(r["meets"], r["se_limited"], r["measured"])) for r in ev["offsets"]])
    rows = []
    for g in ev["bias"]:
        cells = [f"{_val(p, v['bias'])} +- {_val(p, v['se']).lstrip('+')} ({_val(p, v['scatter']).lstrip('+')})"
                 for p, v in g["params"].items()]
        rows.append((g["by"], g["group"], g["n"], *cells, _verdict(g["meets"], g["se_limited"])))
    bias = Table(f"labelled sample - truth: bias +- se (scatter), se including the offsets' shared error; "
                 f"target |bias| <= {bt['teff_k']:g} K / {bt['logg_dex']:g} / {bt['mh_dex']:g} dex",
                 ("by", "group", "n", "teff_k", "logg_dex", "mh_dex", "verdict"), rows)
    lines = [f"class mismatches, {sample} sample: " + (", ".join(f"{k} {n}" for k, n in mism.items()) if mism
                                                       else "none")
             for sample, mism in ev["class_mismatches"].items()]
    return heading, [offsets, bias], lines


# --------------------------------------------------------------------------- the page

@dataclass
class Report:
    index: Path
    figures: dict[int, str] = field(default_factory=dict)   # number -> 'drawn' | 'not built: ...' | 'failed: ...'
    headline: list[HeadlineRow] = field(default_factory=list)
    accuracy: list[str] = field(default_factory=list)        # sections shown, or why not

    @property
    def failed(self) -> dict[int, str]:
        return {n: s for n, s in self.figures.items() if s.startswith("failed")}


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1400px;
     padding:0 12px 40px;color:#1b1b1b;line-height:1.4}
h1{font-size:1.5em;margin:.6em 0 .2em} h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
.meta{color:#555;font-size:.9em}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;font-size:.88em;min-width:100%}
th,td{border-bottom:1px solid #e5e5e5;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4;position:sticky;top:0}
td.num{font-variant-numeric:tabular-nums;white-space:nowrap}
td.nb{color:#999;font-style:italic}
.cards{display:grid;align-items:start;grid-template-columns:repeat(auto-fill,minmax(min(100%,560px),1fr));gap:14px}
figure{margin:0;border:1px solid #ddd;border-radius:6px;padding:8px;background:#fff}
figure.wide{grid-column:1/-1}
figure img{width:100%;height:auto;display:block}
figcaption{font-size:.85em;color:#333;margin-top:4px}
.pending{background:#fafafa;color:#666}
.pending p,.failed p{font-size:.88em;margin:.4em 0}
.failed{border-color:#d88;background:#fff6f6}
pre{font-size:.78em;background:#f7f7f7;padding:8px;overflow-x:auto}
code{background:#f1f1f1;padding:0 3px;border-radius:3px}
@media (max-width:640px){  /* a phone: each headline row becomes a small card, nothing to scroll sideways */
 #headline{min-width:0} #headline thead{display:none}
 #headline tr{display:grid;grid-template-columns:repeat(3,1fr);border-bottom:1px solid #ccc;padding:4px 0}
 #headline td{border:0;padding:1px 4px;white-space:normal}
 #headline td:nth-child(1){grid-column:1/-1;font-size:.78em;color:#666}
 #headline td:nth-child(2){grid-column:1/-1;font-weight:600}
 #headline td:nth-child(n+3)::before{content:attr(data-label);display:block;font-size:.72em;color:#777}
}
"""


def _e(v) -> str:
    return html.escape("" if v is None else str(v))


def html_table(columns, rows, table_id: str | None = None, num_from: int = 0) -> str:
    """A scrollable HTML table; cells from column ``num_from`` on are numeric-aligned."""
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = []
    for r in rows:
        cells = []
        for i, v in enumerate(r):
            cls = "nb" if v == NOT_BUILT else ("num" if i >= num_from and num_from else "")
            klass = f' class="{cls}"' if cls else ""
            cells.append(f'<td{klass} data-label="{_e(columns[i])}">{_e(v)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    tid = f' id="{table_id}"' if table_id else ""
    return f'<div class="scroll"><table{tid}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _figure_card(fig: Figure, status: str, png: str | None) -> str:
    title = f"Fig. {fig.number}. {_e(fig.title)}"
    wide = " wide" if fig.wide else ""
    cap = f"<figcaption><b>{title}</b> {_e(fig.caption)}</figcaption>"
    if png:
        return (f'<figure id="fig{fig.number}" class="{wide.strip()}">'
                f'<img src="{_e(png)}" alt="{title}">{cap}</figure>')
    kind = "failed" if status.startswith("failed") else "pending"
    return f'<figure id="fig{fig.number}" class="{kind}{wide}">{cap}<p>{_e(status)}</p></figure>'


def _run_line(con) -> str:
    try:
        row = con.execute("""select r.run_id, r.started_at, r.git_rev from meta.runs r
                             where r.run_id in (select run_id from meta.model_runs where status = 'built')
                             order by r.started_at desc limit 1""").fetchone()
    except Exception:  # noqa: BLE001 - a warehouse without the ledger
        row = None
    if row is None:
        return "no build recorded in meta.runs"
    return f"last build: run {row[0]} at {row[1]:%Y-%m-%d %H:%M}" + (f", git {row[2]}" if row[2] else "")


def _draw(con, fig: Figure, out_dir: Path, configs: dict) -> tuple[str, str | None]:
    if fig.draw is None:
        return f"{NOT_BUILT}: needs {', '.join(fig.needs)}; run `mgold build`", None
    missing = unmet(con, fig.needs)
    if missing:
        return f"{NOT_BUILT}: needs {', '.join(missing)}; run `mgold build`", None
    model = fig.needs[0]
    if model not in configs:
        configs[model] = recorded_config(con, model)
    name = f"fig{fig.number:02d}.png"
    try:
        path = fig.draw(con, configs[model], out_dir / name)
    except Exception as e:  # noqa: BLE001 - one broken figure must not cost the page
        return f"failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", None
    if path is None:
        return f"nothing to draw: {', '.join(fig.needs)} hold no rows this figure can use", None
    return "drawn", name


def _accuracy(con, cfg: Config) -> tuple[list[str], list[str]]:
    """HTML blocks of the accuracy vs truth, and a one-line status per part."""
    from . import clean, labels

    if not labels.has_truth(con):
        return ["<p>No truth tables: this warehouse is not a synthetic build, so there is no accuracy to show "
                "(what the paper could not measure either).</p>"], ["no truth tables"]
    blocks, status = [], []
    if unmet(con, LABELLED):
        status.append(f"labels: {NOT_BUILT}")
    else:
        try:
            heading, tables, lines = labels_accuracy_tables(labels.evaluate(con, recorded_config(con, LABELLED[0])))
            blocks.append(f"<h3>Label transfer (§2.2)</h3><p>{_e(heading)}</p>")
            for t in tables:
                blocks.append(f"<p>{_e(t.title)}</p>" + html_table(t.columns, t.rows, num_from=3))
            blocks.append("".join(f"<p>{_e(x)}</p>" for x in lines))
            status.append("labels")
        except Exception as e:  # noqa: BLE001
            status.append(f"labels failed: {type(e).__name__}: {e}")
            blocks.append(f'<p class="failed">label accuracy failed: {_e(type(e).__name__)}: {_e(e)}</p>')
    if unmet(con, ("cln_dbscan", "cln_kept", "truth.spectra")):
        status.append(f"clean: {NOT_BUILT}")
    else:
        try:
            text = clean.format_report(clean.evaluate(con))
            blocks.append(f"<h3>Cleaning (§2.3-2.4)</h3><pre>{_e(text)}</pre>")
            status.append("clean")
        except Exception as e:  # noqa: BLE001
            status.append(f"clean failed: {type(e).__name__}: {e}")
            blocks.append(f'<p class="failed">cleaning accuracy failed: {_e(type(e).__name__)}: {_e(e)}</p>')
    return blocks, status


def render(con, out_dir: Path, figures: tuple[Figure, ...] | None = None,
           headlines: tuple[Headline, ...] | None = None, title: str = "mgold report",
           accuracy: bool = True) -> Report:
    """Write ``out_dir/index.html`` and the figures' PNGs; return what was drawn and what was not.
    ``figures`` / ``headlines`` default to ``FIGURES`` / ``HEADLINES``."""
    figures = FIGURES if figures is None else figures
    headlines = HEADLINES if headlines is None else headlines
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = Report(out_dir / "index.html")
    configs: dict[str, Config] = {}
    cards = []
    for fig in figures:
        status, png = _draw(con, fig, out_dir, configs)
        report.figures[fig.number] = status
        cards.append(_figure_card(fig, status, png))
    report.headline = headline_rows(con, headlines)
    rows = [(r.section, r.quantity, r.paper, r.mgold, r.truth) for r in report.headline]
    acc_blocks, report.accuracy = _accuracy(con, recorded_config(con, "cln_dbscan")) if accuracy else ([], [])
    drawn = sum(s == "drawn" for s in report.figures.values())
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{CSS}</style></head>
<body>
<h1>{_e(title)}</h1>
<p class="meta">{_e(_run_line(con))} · written {dt.datetime.now():%Y-%m-%d %H:%M} · {drawn} of {len(figures)} figures
drawn · the paper: Du, Luo, Wang et al., <i>A Golden Sample with precise Atmospheric Parameter labels of M-type
Stars</i></p>
<p class="meta"><a href="#headline">headline numbers</a> · <a href="#figures">figures</a>
{'· <a href="#accuracy">accuracy vs truth</a>' if acc_blocks else ''}</p>
<h2 id="headline-title">Headline numbers</h2>
<p class="meta">paper: the value quoted in the section named; mgold: this warehouse ("{NOT_BUILT}": the stage
that makes it has not run here); truth: what the synthetic universe injected, or how much of the result is truly
defective. Offsets are catalogue - StarHorse, ± their standard error.</p>
{html_table(("section", "quantity", "paper", "mgold", "truth (synthetic)"), rows, "headline", num_from=2)}
<h2 id="figures">Figures</h2>
<div class="cards">
{chr(10).join(cards)}
</div>
{'<h2 id="accuracy">Accuracy against the synthetic truth</h2>' + chr(10).join(acc_blocks) if acc_blocks else ''}
</body></html>
"""
    report.index.write_text(page, encoding="utf-8")
    return report
