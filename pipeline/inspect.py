"""Manual inspection of the bins DBSCAN could not settle (paper §2.4), and its plots.

Bins with one sample or no cluster land in ``cln_inspection_queue``. A person looks
at a bin (``plot_bin``: its normalised spectra, cluster members in red, kept ones
bold) and decides (``decide``): rows in ``landing.inspection_decisions`` (bin_id,
obsid, decision 'keep' | 'reject', decided_at, note). ``cln_kept`` adds the kept and
drops the rejected on every later build. Decisions are a landing source: after
each change a ``meta.ingested_files`` row of kind 'inspection_decisions' carries the
sha256 of the table's content, which is how the runner notices it and rebuilds
``cln_kept`` (and only what depends on it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np


DECISIONS = "landing.inspection_decisions"     # created with the warehouse (warehouse.META_DDL)
DECISIONS_KIND = "inspection_decisions"
CHOICES = ("keep", "reject")


class InspectError(ValueError):
    """A bad request (unknown bin, obsid not in the bin, ...): the message says which."""


def queue(con) -> list[dict]:
    """The inspection queue: bin, reason, spectra count, whether already decided."""
    _need(con, "cln_inspection_queue")
    cur = con.execute("select * from cln_inspection_queue order by status desc, bin_id")
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
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    rows = [(bin_id, int(o), "keep", now, note) for o in keep] + \
           [(bin_id, int(o), "reject", now, note) for o in reject]
    con.execute("begin")
    try:
        for r in rows:
            con.execute(f"delete from {DECISIONS} where obsid = ?", [r[1]])
            con.execute(f"insert into {DECISIONS} (bin_id, obsid, decision, decided_at, note) "
                        "values (?, ?, ?, ?, ?)", list(r))
        _fingerprint(con, run_id)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return len(rows)


def _fingerprint(con, run_id: str | None) -> None:
    """Replace the meta.ingested_files row that tells the runner the decisions changed."""
    content = con.execute(f"select bin_id, obsid, decision, coalesce(note, '') from {DECISIONS} "
                          "order by obsid").fetchall()
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
               b.mh_lo_dex, d.cluster_label, d.in_main_cluster, k.is_kept, d.min_pts, d.nn_dist,
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


def plot_bin(con, bin_id: str, out: Path) -> Path:
    """PNG of one bin's spectra with their labels; cluster members highlighted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, loglam, flux, ivar = bin_spectra(con, bin_id)
    y = normalised(flux, ivar)
    member = np.array([bool(r["in_main_cluster"]) for r in rows])
    kept = np.array([bool(r["is_kept"]) for r in rows])
    r0 = rows[0]
    fig, ax = plt.subplots(figsize=(11, 5))
    draw_bin(ax, loglam, y, member, kept,
             f"{bin_id}: Teff {r0['teff_lo_k']:.0f} K, log g {r0['logg_lo_dex']:.2f}, [M/H] "
             f"{r0['mh_lo_dex']:.2f} (bin lower edges); {len(rows)} spectra, minPts {r0['min_pts']}")
    lines = [f"{r['obsid']}  S/N {r['snr_i']:.0f}  {r['teff_k']:.0f}/{r['logg_dex']:.2f}/{r['mh_dex']:+.2f}  "
             f"{'kept' if r['is_kept'] else 'member' if r['in_main_cluster'] else 'noise'}"
             for r in rows[:15]]
    ax.text(1.01, 1.0, "obsid  S/N  Teff/logg/[M/H]\n" + "\n".join(lines), transform=ax.transAxes,
            va="top", fontsize=7, family="monospace")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out
