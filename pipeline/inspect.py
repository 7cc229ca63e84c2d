"""Manual inspection of the bins DBSCAN could not settle (paper §2.4), and its plots.

Bins with one sample or no cluster land in ``cln_inspection_queue``. A person looks
at a bin (``plot_bin``: its normalised spectra, cluster members in red, kept ones
bold) and decides (``decide``): rows in ``landing.inspection_decisions`` (bin_id,
obsid, decision 'keep' | 'reject', decided_at, note). ``cln_kept`` adds the kept and
drops the rejected on every later build. Decisions are a landing source: after
each change a ``meta.ingested_files`` row of kind 'inspection_decisions' carries the
sha256 of the table's content, which is how the runner notices it and rebuilds
``cln_kept`` (and only what depends on it).

Every spectrum of a queued bin also has a suggestion with its evidence (``cln_suggestions``,
stages/suggest.py); ``plot_bin`` draws it beside the neighbouring bins' kept spectra.
``accept_suggestions`` records the confident ones in bulk as decisions with ``suggested = true``
(a person's decision is never overwritten, and a later one replaces the suggestion;
``undo_suggestions`` deletes them all). ``cln_kept`` applies the decisions in force
(``cln_decisions``) and, for spectra nobody decided, the suggestions of at least
``clean.suggestion_min_confidence``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np

from .warehouse import transaction

DECISIONS = "landing.inspection_decisions"     # created with the warehouse (warehouse.META_DDL)
DECISIONS_KIND = "inspection_decisions"
CHOICES = ("keep", "reject")


class InspectError(ValueError):
    """A bad request (unknown bin, obsid not in the bin, ...): the message says which."""


SORTS = {
    "status": "case status when 'pending' then 0 when 'suggested' then 1 else 2 end, bin_id",
    # what most needs a person first: no suggestion at all, then the least confident
    "confidence": "confidence asc nulls first, bin_id",
    "bin": "bin_id",
}


def queue(con, sort: str = "status") -> list[dict]:
    """The inspection queue: bin, reason, spectra count, status (pending | suggested | decided) and
    its suggestions' confidence, sorted by ``sort`` (one of ``SORTS``)."""
    if sort not in SORTS:
        raise InspectError(f"unknown sort {sort!r}; choices: {', '.join(SORTS)}")
    _need(con, "cln_inspection_queue")
    cur = con.execute(f"select * from cln_inspection_queue order by {SORTS[sort]}")
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def decide(con, bin_id: str, keep: list[int] = (), reject: list[int] = (), note: str = "",
           run_id: str | None = None) -> int:
    """Record keep / reject decisions for obsids of ``bin_id``; returns rows written."""
    _need(con, "cln_bins")
    both = set(keep) & set(reject)
    if both:
        raise InspectError(f"obsid {sorted(both)[0]} is both kept and rejected")
    in_bin = {r[0] for r in con.execute("select obsid from cln_bins where bin_id = ?", [bin_id]).fetchall()}
    if not in_bin:
        raise InspectError(f"no bin {bin_id!r} in cln_bins (see `mgold inspect list`)")
    for o in (*keep, *reject):
        if o not in in_bin:
            raise InspectError(f"obsid {o} is not in bin {bin_id}")
    now = _now()
    rows = [(bin_id, int(o), "keep", now, note, False) for o in keep] + \
           [(bin_id, int(o), "reject", now, note, False) for o in reject]
    _record(con, rows, run_id)
    return len(rows)


def accept_suggestions(con, min_confidence: float, run_id: str | None = None) -> tuple[int, int]:
    """Record every suggestion of ``cln_suggestions`` at least ``min_confidence`` confident as a
    decision (``suggested = true``), except for spectra a person decided: a person's decision is
    never replaced by a suggestion, and a later one replaces the suggestion. Returns (keeps, rejects)."""
    _need(con, "cln_suggestions")
    if not 0.5 <= min_confidence <= 1.0:
        raise InspectError(f"--min-confidence {min_confidence} is outside 0.5-1 (a suggestion's confidence is "
                           "max(p_keep, 1 - p_keep))")
    found = con.execute(f"""
        select bin_id, obsid, suggestion, p_keep, n_within, n_references from cln_suggestions
        where suggestion is not null and confidence >= ?
          and obsid not in (select obsid from {DECISIONS} where not coalesce(suggested, false))
        order by obsid""", [min_confidence]).fetchall()
    now = _now()
    rows = [(b, int(o), d, now, f"suggestion: p_keep {p:.3f}, {w if w is not None else 0} of {n} references "
                               "within eps", True) for b, o, d, p, w, n in found]
    _record(con, rows, run_id)
    return sum(r[2] == "keep" for r in rows), sum(r[2] == "reject" for r in rows)


def undo_suggestions(con, run_id: str | None = None) -> int:
    """Delete every decision recorded from a suggestion; returns how many."""
    _need(con, "cln_bins")
    n = con.execute(f"select count(*) from {DECISIONS} where coalesce(suggested, false)").fetchone()[0]
    with transaction(con):
        con.execute(f"delete from {DECISIONS} where coalesce(suggested, false)")
        _fingerprint(con, run_id)
    return n


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _record(con, rows: list[tuple], run_id: str | None) -> None:
    """Write (bin_id, obsid, decision, decided_at, note, suggested) rows, each replacing the obsid's
    earlier decisions, and the fingerprint, in one transaction."""
    with transaction(con):
        for r in rows:
            con.execute(f"delete from {DECISIONS} where obsid = ?", [r[1]])
            con.execute(f"insert into {DECISIONS} (bin_id, obsid, decision, decided_at, note, suggested) "
                        "values (?, ?, ?, ?, ?, ?)", list(r))
        _fingerprint(con, run_id)


def _fingerprint(con, run_id: str | None) -> None:
    """Replace the meta.ingested_files row that tells the runner the decisions changed."""
    content = con.execute(f"select bin_id, obsid, decision, coalesce(note, ''), coalesce(suggested, false) "
                          f"from {DECISIONS} order by obsid").fetchall()
    sha = hashlib.sha256(json.dumps(content).encode()).hexdigest()
    con.execute("delete from meta.ingested_files where kind = ?", [DECISIONS_KIND])
    con.execute("insert into meta.ingested_files values (?, ?, ?, ?, ?, now())",
                [sha, DECISIONS, DECISIONS_KIND, run_id or "inspect", len(content)])


def _need(con, relation: str) -> None:
    name = relation.split(".")[-1]
    found = con.execute("select count(*) from duckdb_tables() where table_name = ? union all "
                        "select count(*) from duckdb_views() where view_name = ?", [name, name]).fetchall()
    if not sum(r[0] for r in found):
        raise InspectError(f"{relation} does not exist: build the clean layer first (mgold build)")


def bin_spectra(con, bin_id: str) -> tuple[list[dict], np.ndarray, np.ndarray, np.ndarray]:
    """(rows, loglam, flux, ivar) of a bin's clustered spectra, in S/N order."""
    _need(con, "cln_bins")
    cur = con.execute("""
        select b.bin_id, b.obsid, b.snr_i, b.teff_k, b.logg_dex, b.mh_dex, b.teff_lo_k, b.logg_lo_dex,
               b.mh_lo_dex, d.cluster_label, d.in_main_cluster, k.is_kept, d.min_pts, d.nn_dist, d.eps,
               s.rv_kms, s.loglam0, s.dloglam, s.flux, s.ivar
        from cln_bins b join spc_cluster_grid s using (obsid) left join cln_dbscan d using (obsid)
        left join cln_keep_rank k using (obsid)
        where b.bin_id = ? order by b.snr_rank""", [bin_id])
    cols = [c[0] for c in cur.description]
    data = cur.fetchall()
    if not data:
        raise InspectError(f"no bin {bin_id!r} in cln_bins (see `mgold inspect list`)")
    rows = [dict(zip(cols[:-2], r[:-2])) for r in data]
    flux = np.asarray([r[-2] for r in data], dtype=np.float64)
    ivar = np.asarray([r[-1] for r in data], dtype=np.float64)
    loglam = rows[0]["loglam0"] + rows[0]["dloglam"] * np.arange(flux.shape[1])
    return rows, loglam, flux, ivar


def normalised(flux: np.ndarray, ivar: np.ndarray) -> np.ndarray:
    """Each spectrum over its median good flux, masked pixels NaN (for display)."""
    good = (ivar > 0) & np.isfinite(flux)
    med = np.array([np.median(f[g]) if g.any() else np.nan for f, g in zip(flux, good)])
    return np.where(good, flux, np.nan) / med[:, None]


def draw_bin(ax, loglam: np.ndarray, y: np.ndarray, member: np.ndarray, kept: np.ndarray,
             title: str) -> None:
    """Gray: every spectrum; red: cluster members; bold red: kept (paper Fig. 6 colours)."""
    wave = 10 ** loglam
    for i in np.flatnonzero(~member):
        ax.plot(wave, y[i], color="0.6", lw=0.5)
    for i in np.flatnonzero(member):
        ax.plot(wave, y[i], color="tab:red", lw=1.2 if kept[i] else 0.6, alpha=0.9)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("rest-frame vacuum wavelength (AA)")
    ax.set_ylabel("flux / median")


def suggestions_of(con, bin_id: str) -> list[dict]:
    """The cln_suggestions rows of one bin (empty when the model is not built or holds none)."""
    try:
        _need(con, "cln_suggestions")
    except InspectError:
        return []
    cur = con.execute("select * from cln_suggestions where bin_id = ? order by snr_i desc, obsid", [bin_id])
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def spectra_of(con, obsids: list[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{obsid: (loglam, flux / median, NaN on bad pixels)} from spc_cluster_grid."""
    rows = con.execute("select obsid, loglam0, dloglam, flux, ivar from spc_cluster_grid "
                       "where obsid in (select unnest(?::bigint[]))", [[int(o) for o in obsids]]).fetchall()
    out = {}
    for o, l0, dl, flux, ivar in rows:
        f = np.asarray(flux, dtype=np.float64)[None]
        out[int(o)] = (l0 + dl * np.arange(f.shape[1]), normalised(f, np.asarray(ivar, dtype=np.float64)[None])[0])
    return out


def draw_suggestion(ax, con, sugg: list[dict], eps: float, max_refs: int = 12) -> list[str]:
    """The bin's spectra (black) beside the kept spectra of the neighbouring bins they were compared
    with (green: within eps once scaled, orange: beyond), offset per candidate; returns text lines."""
    lines = []
    shown = [r for r in sugg if r["reference_obsids"]][:4]
    want = {o for r in shown for o in r["reference_obsids"][:max_refs]} | {r["obsid"] for r in shown}
    spec = spectra_of(con, sorted(want))
    for k, r in enumerate(shown):
        off = 1.2 * k
        for o, d in list(zip(r["reference_obsids"], r["scaled_distances"]))[:max_refs]:
            if o in spec:
                wave, y = 10 ** spec[o][0], spec[o][1]
                ax.plot(wave, y + off, lw=0.5, alpha=0.7,
                        color="tab:green" if d is not None and d <= eps else "tab:orange")
        if r["obsid"] in spec:
            ax.plot(10 ** spec[r["obsid"]][0], spec[r["obsid"]][1] + off, color="k", lw=1.1)
    for r in sugg:
        near = ", ".join(f"{o} {b} {d:.2f}" for o, b, d in list(zip(r["reference_obsids"], r["reference_bins"],
                                                                    r["scaled_distances"]))[:3] if d is not None)
        verdict = (f"{r['suggestion']} (confidence {r['confidence']:.2f}, p_keep {r['p_keep']:.2f}, "
                   f"{r['n_within']} of {r['n_references']} references within eps, {r['n_needed']} needed)"
                   if r["suggestion"] and r["n_needed"] is not None else
                   f"{r['suggestion'] or 'no suggestion'}: {r['note']}")
        lines.append(f"{r['obsid']}: {verdict}" + (f"; nearest: {near}" if near else ""))
    ax.set_title(f"black: this bin's spectra; kept spectra of the bins within one step (green: scaled "
                 f"distance <= eps {eps:g}, orange: beyond), offset per spectrum", fontsize=9)
    ax.set_xlabel("rest-frame vacuum wavelength (AA)")
    ax.set_ylabel("flux / median + offset")
    return lines


def plot_bin(con, bin_id: str, out: Path, eps: float | None = None) -> Path:
    """PNG of one bin's spectra with their labels; cluster members highlighted. A bin with suggestions
    (cln_suggestions) gets a second panel: its spectra beside the neighbouring bins' kept spectra."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, loglam, flux, ivar = bin_spectra(con, bin_id)
    y = normalised(flux, ivar)
    member = np.array([bool(r["in_main_cluster"]) for r in rows])
    kept = np.array([bool(r["is_kept"]) for r in rows])
    r0 = rows[0]
    sugg = suggestions_of(con, bin_id)
    fig, axes = plt.subplots(2 if sugg else 1, 1, figsize=(11, 9.5 if sugg else 5), squeeze=False)
    ax = axes[0, 0]
    draw_bin(ax, loglam, y, member, kept,
             f"{bin_id}: Teff {r0['teff_lo_k']:.0f} K, log g {r0['logg_lo_dex']:.2f}, [M/H] "
             f"{r0['mh_lo_dex']:.2f} (bin lower edges); {len(rows)} spectra, minPts {r0['min_pts']}")
    lines = [f"{r['obsid']}  S/N {r['snr_i']:.0f}  {r['teff_k']:.0f}/{r['logg_dex']:.2f}/{r['mh_dex']:+.2f}  "
             f"{'kept' if r['is_kept'] else 'member' if r['in_main_cluster'] else 'noise'}"
             for r in rows[:15]]
    ax.text(1.01, 1.0, "obsid  S/N  Teff/logg/[M/H]\n" + "\n".join(lines), transform=ax.transAxes,
            va="top", fontsize=7, family="monospace")
    if sugg:
        eps = float(eps if eps is not None else r0["eps"] if r0.get("eps") is not None else 1.0)
        text = draw_suggestion(axes[1, 0], con, sugg, eps)
        axes[1, 0].text(0.0, -0.14, "\n".join(text[:8]), transform=axes[1, 0].transAxes, va="top", fontsize=7,
                        family="monospace")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out
