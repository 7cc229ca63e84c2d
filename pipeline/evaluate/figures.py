"""The paper's figures drawn from a built warehouse, and their registry (``mgold report html``).

Each figure is a function ``draw(con, cfg, out_path) -> Path | None``: it reads models through
``con``, writes one matplotlib (Agg) PNG to ``out_path`` and returns it, or returns None when the
relations exist but hold nothing it can draw. ``FIGURES`` lists every figure of the paper with
the relations it needs; a figure whose relations are missing or empty is shown as "not built
yet" by pipeline/evaluate/html.py, so a later stage only adds its function and its entry here.
Reads models only (never ``truth.*``): every figure works on real data too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from ..config import Config
from ..inspect import normalised

PARAM_LABELS = {"teff_k": "Teff (K)", "logg_dex": "log g (dex)", "mh_dex": "[M/H] (dex)"}
CATALOG_NAMES = {"aspcap": "ASPCAP", "qiu23": "Qiu23", "ding22": "Ding22", "laspm": "LASPM"}
ISOCHRONE_COLOURS = ("red", "blue", "black", "green", "purple")   # paper Fig. 10: -0.6, -0.2, +0.2


@dataclass(frozen=True)
class Figure:
    number: int
    title: str
    draw: Callable[..., Path | None] | None   # (con, cfg, out_path) -> Path | None; None: its stage is not written yet
    needs: tuple[str, ...]                    # relations read; the first one's build config is passed as cfg
    caption: str = ""
    wide: bool = False                        # spans the page's width (multi-panel figures and spectra)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: Path, cfg: Config) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=cfg.report.figure_dpi, bbox_inches="tight")
    _pyplot().close(fig)
    return out


def columns(con, sql: str, params: list | None = None) -> dict[str, np.ndarray]:
    """The result of ``sql`` as {column: numpy array} (NULL -> NaN in numeric columns)."""
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    rows = cur.fetchall()
    out = {}
    for i, n in enumerate(names):
        vals = [r[i] for r in rows]
        try:
            out[n] = np.array([np.nan if v is None else v for v in vals], dtype=float)
        except (TypeError, ValueError):
            out[n] = np.array(vals, dtype=object)
    return out


# --------------------------------------------------------------------------- Figs 1-2: CMD selection

def cmd_selection(con, cfg: Config, out: Path, cls: str) -> Path | None:
    """Paper Figs 1-2: M_G vs (BP-RP)_0 of the candidates and of the primary sample of one class,
    the binned means with 1 sigma error bars (sel_cmd_bins), the fitted curve (black dashed) and
    the box edges (red dashed: fit +- the measured width, and the class's magnitude/colour limits)."""
    prim = columns(con, "select bp_rp0_mag, abs_g_mag from sel_primary where class = ?", [cls])
    if not len(prim["abs_g_mag"]):
        return None
    cand = columns(con, "select bp_rp0_mag, abs_g_mag from sel_stars where is_candidate")
    bins = columns(con, "select mean_bp_rp0_mag, mean_abs_g_mag, sigma_abs_g_mag, n_stars from sel_cmd_bins "
                        "where class = ? order by step", [cls])
    curve = columns(con, "select bp_rp0_mag, abs_g_fit_mag, abs_g_upper_mag, abs_g_lower_mag from sel_cmd_curve "
                         "where class = ? order by bp_rp0_mag", [cls])
    fit = con.execute("select fit_order, width_mag, n_stars from sel_cmd_fit where class = ?", [cls]).fetchone()
    s = cfg.select
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    pad = 0.6
    x_lo, x_hi = np.nanpercentile(prim["bp_rp0_mag"], [0.5, 99.5]) + (-pad, pad)
    y_lo, y_hi = np.nanpercentile(prim["abs_g_mag"], [0.5, 99.5]) + (-1.5, 1.5)
    if cls == "dwarf":
        y_lo, y_hi = min(y_lo, s.dwarf_abs_g_min_mag - 1), max(y_hi, s.dwarf_abs_g_max_mag + 1)
    else:
        x_lo, x_hi = min(x_lo, s.giant_bp_rp_min_mag - pad), max(x_hi, s.giant_bp_rp_max_mag + pad)
    ax.scatter(cand["bp_rp0_mag"], cand["abs_g_mag"], s=2, c="0.8", lw=0, label="candidates (all classes)")
    ax.scatter(prim["bp_rp0_mag"], prim["abs_g_mag"], s=3, c="tab:blue", lw=0,
               label=f"primary {cls}s ({len(prim['abs_g_mag']):,})")
    ax.errorbar(bins["mean_bp_rp0_mag"], bins["mean_abs_g_mag"], yerr=bins["sigma_abs_g_mag"], fmt="o",
                color="k", ms=4, capsize=3, label=f"mean and 1 sigma per {s.cmd_color_step_mag:g} mag step")
    if len(curve["bp_rp0_mag"]):
        ax.plot(curve["bp_rp0_mag"], curve["abs_g_fit_mag"], "k--", lw=1.2,
                label=f"fit, order {fit[0]}" if fit else "fit")
        ax.plot(curve["bp_rp0_mag"], curve["abs_g_upper_mag"], "r--", lw=1.0,
                label=f"box: fit +- {fit[1]:.2f} mag" if fit else "box")
        ax.plot(curve["bp_rp0_mag"], curve["abs_g_lower_mag"], "r--", lw=1.0)
    if cls == "dwarf":
        for y in (s.dwarf_abs_g_min_mag, s.dwarf_abs_g_max_mag):
            ax.axhline(y, color="r", ls="--", lw=0.8)
    else:
        for x in (s.giant_bp_rp_min_mag, s.giant_bp_rp_max_mag):
            ax.axvline(x, color="r", ls="--", lw=0.8)
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_hi, y_lo)   # brighter up
    ax.set_xlabel("(BP - RP)_0 (mag)")
    ax.set_ylabel("M_G (mag)")
    ax.set_title(f"CMD selection of M {cls}s (sel_primary, sel_cmd_bins, sel_cmd_fit)", fontsize=9)
    ax.legend(fontsize=7, loc="lower left" if cls == "dwarf" else "upper right", markerscale=2)
    return _save(fig, out, cfg)


# --------------------------------------------------------------------------- Figs 3-4: offsets

def offset_histograms(con, cfg: Config, out: Path, cls: str) -> Path | None:
    """Paper Figs 3-4: histograms of (catalogue - StarHorse) per catalogue the class takes labels from
    (rows) and parameter (columns), with the Gaussian lbl_offsets fitted (red dashed; mean, sigma, n)."""
    catalogs = cfg.labels.dwarf_priority if cls == "dwarf" else cfg.labels.giant_priority
    d = columns(con, "select catalog, d_teff_k, d_logg_dex, d_mh_dex from lbl_starhorse_deltas where class = ?",
                [cls])
    if not len(d["catalog"]):
        return None
    fits = {(c, p): (m, sd, n) for c, p, m, sd, n in con.execute(
        "select catalog, param, mean, sigma, n from lbl_offsets where class = ?", [cls]).fetchall()}
    plt = _pyplot()
    fig, axes = plt.subplots(len(catalogs), 3, figsize=(10, 2.5 * len(catalogs)), squeeze=False)
    for i, cat in enumerate(catalogs):
        sel = d["catalog"] == cat
        for j, p in enumerate(("teff_k", "logg_dex", "mh_dex")):
            ax = axes[i, j]
            x = d[f"d_{p}"][sel].astype(float)
            x = x[np.isfinite(x)]
            mean, sigma, n = fits.get((cat, p), (None, None, 0))
            ax.set_xlabel(f"{CATALOG_NAMES.get(cat, cat)} - StarHorse, {PARAM_LABELS[p]}", fontsize=8)
            if not x.size:
                ax.text(0.5, 0.5, "no matched stars", ha="center", transform=ax.transAxes, fontsize=8)
                continue
            med = np.median(x)
            spread = 1.4826 * np.median(np.abs(x - med)) or (np.std(x) or 1.0)
            lo, hi = med - 5 * spread, med + 5 * spread
            n_bins = int(np.clip(2 * math.sqrt(x.size), 10, 40))
            _, edges, _ = ax.hist(x, bins=n_bins, range=(lo, hi), color="0.55")
            if mean is not None and sigma:
                g = np.linspace(lo, hi, 300)
                width = edges[1] - edges[0]
                ax.plot(g, n * width * np.exp(-0.5 * ((g - mean) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi)),
                        "r--", lw=1.2)
                fmt = ".1f" if p == "teff_k" else ".3f"
                note = f"mean {mean:+{fmt}}\nsigma {sigma:{fmt}}\nn {n:,}"
            else:
                note = f"unmeasured\n(n {n} < {cfg.labels.offset_min_stars})"
            ax.text(0.97, 0.95, note, ha="right", va="top", transform=ax.transAxes, fontsize=7)
            ax.tick_params(labelsize=7)
    fig.suptitle(f"M {cls}s: catalogue - StarHorse, Gaussian of the clipped fit (lbl_starhorse_deltas, "
                 "lbl_offsets)", fontsize=9)
    fig.tight_layout()
    return _save(fig, out, cfg)


# --------------------------------------------------------------------------- Fig 5: supplement

def supplement_cmd(con, cfg: Config, out: Path) -> Path | None:
    """Paper Fig. 5: the supplement stars added to the labelled sample on the CMD, coloured by log g."""
    sup = columns(con, """select s.bp_rp0_mag, s.abs_g_mag, l.logg_dex from lbl_labelled_sample l
                          join sel_stars s using (source_id) where l.is_supplement""")
    if not len(sup["logg_dex"]):
        return None
    cand = columns(con, "select bp_rp0_mag, abs_g_mag from sel_stars where is_candidate")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    ax.scatter(cand["bp_rp0_mag"], cand["abs_g_mag"], s=2, c="0.85", lw=0, label="candidates")
    sc = ax.scatter(sup["bp_rp0_mag"], sup["abs_g_mag"], s=14, c=sup["logg_dex"], cmap="jet", lw=0,
                    label=f"supplement ({len(sup['logg_dex']):,} added)")
    fig.colorbar(sc, ax=ax, label="log g (dex, shifted ASPCAP)")
    ax.invert_yaxis()
    ax.set_xlabel("(BP - RP)_0 (mag)")
    ax.set_ylabel("M_G (mag)")
    ax.set_title("the §2.2.3 supplement added to lbl_labelled_sample", fontsize=9)
    ax.legend(fontsize=7, markerscale=2)
    return _save(fig, out, cfg)


# --------------------------------------------------------------------------- Fig 6: eps

def eps_bin(con, cfg: Config, out: Path) -> Path | None:
    """Paper Fig. 6: pipeline/eps_figure.py on the bin with the most spectra on the cluster grid
    (a warehouse with its spectra cut, like warehouse.duckdb.example, keeps only some)."""
    from ..eps_figure import eps_figure

    row = con.execute("""select bin_id from cln_bins join spc_cluster_grid using (obsid)
                         group by bin_id order by count(*) desc, bin_id limit 1""").fetchone()
    return None if row is None else eps_figure(con, out, cfg, row[0])[0]


# --------------------------------------------------------------------------- Fig 10: Kiel

@dataclass(frozen=True)
class Isochrone:
    mh_wanted_dex: float
    mh_dex: float
    age_gyr: float
    teff_k: np.ndarray
    logg_dex: np.ndarray


def isochrones(con, cfg: Config, teff_range_k: tuple[float, float] = (2800.0, 4600.0)) -> tuple[list[Isochrone], str]:
    """The PARSEC isochrones of ``landing.isochrones`` nearest to ``report.isochrone_age_gyr`` (in log age)
    and, at that age, nearest to each ``report.isochrone_mh_dex``: pre-MS to RGB (labels 0-3) in order
    of initial mass, NaN outside ``teff_range_k``. Returns them with a one-line note saying what was
    drawn or why nothing was."""
    have = con.execute("select count(*) from information_schema.tables where table_schema = 'landing' "
                       "and table_name = 'isochrones'").fetchone()[0]
    if not have:
        return [], ("PARSEC isochrones not ingested (mgold ingest catalog isochrones "
                    "../shared/data/real/isochrones/... -w W)")
    r = cfg.report
    iso = columns(con, """select zini, age_yr, logte_k, logg_dex from landing.isochrones
                          where coalesce(label, 1) between 0 and 3 and logte_k is not null and logg_dex is not null
                          order by zini, age_yr, coalesce(mini_msun, mass_msun)""")
    if not len(iso["zini"]):
        return [], "landing.isochrones holds no pre-MS to RGB points"
    ages = np.unique(iso["age_yr"])
    age = ages[np.argmin(np.abs(np.log10(ages) - math.log10(r.isochrone_age_gyr * 1e9)))]
    at_age = iso["age_yr"] == age
    zs = np.unique(iso["zini"][at_age])
    mhs = np.log10(zs / r.isochrone_z_sun)
    out = []
    for want in r.isochrone_mh_dex:
        k = int(np.argmin(np.abs(mhs - want)))
        m = at_age & (iso["zini"] == zs[k])
        teff = 10 ** iso["logte_k"][m]
        # NaN, not dropped: the line breaks where the track leaves the range instead of jumping across it
        out_of_range = (teff < teff_range_k[0]) | (teff > teff_range_k[1])
        out.append(Isochrone(float(want), float(mhs[k]), float(age / 1e9), np.where(out_of_range, np.nan, teff),
                             np.where(out_of_range, np.nan, iso["logg_dex"][m])))
    note = (f"PARSEC isochrones at {age / 1e9:g} Gyr (asked {r.isochrone_age_gyr:g}); [M/H] "
            + ", ".join(f"{i.mh_dex:+.2f} for {i.mh_wanted_dex:+.1f}" for i in out))
    return out, note


def kiel(con, cfg: Config, out: Path, relation: str = "cln_kept") -> Path | None:
    """Paper Fig. 10 (and 14 with another relation): Teff vs log g of ``relation`` coloured by [M/H],
    with the PARSEC isochrones of ``isochrones`` (dashed), or a note saying they are not ingested."""
    s = columns(con, f"select teff_k, logg_dex, mh_dex from {relation}")
    if not len(s["teff_k"]):
        return None
    tracks, note = isochrones(con, cfg)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    sc = ax.scatter(s["teff_k"], s["logg_dex"], c=s["mh_dex"], cmap="jet", s=10, lw=0)
    fig.colorbar(sc, ax=ax, label="[M/H] (dex)")
    for t, colour in zip(tracks, ISOCHRONE_COLOURS):
        ax.plot(t.teff_k, t.logg_dex, ls="--", color=colour, lw=1.2, label=f"PARSEC [M/H] {t.mh_dex:+.2f}")
    ax.invert_xaxis()
    ax.invert_yaxis()
    ax.set_xlabel("Teff (K)")
    ax.set_ylabel("log g (dex)")
    ax.set_title(f"Kiel diagram of {relation} ({len(s['teff_k']):,} spectra)", fontsize=9)
    if tracks:
        ax.legend(fontsize=7, loc="lower left")
    ax.text(0.0, -0.12, note, transform=ax.transAxes, fontsize=7, va="top", wrap=True)
    return _save(fig, out, cfg)


# --------------------------------------------------------------------------- Figs 11-13: spectra

KEPT_META_SQL = """select obsid, class, teff_k, logg_dex, mh_dex, snr_i, teff_lo_k, logg_lo_dex, mh_lo_dex
                   from cln_kept where obsid in (select obsid from spc_cluster_grid)
                   and obsid in (select obsid from gold_sample) order by obsid"""
BIN_NAMES = {"teff_lo_k": "Teff", "logg_lo_dex": "log g", "mh_lo_dex": "[M/H]"}
WIDEN = (1, 2, 4, 8)   # coarser groupings tried, in units of the bin steps, until a sequence has 3 members


def _grid(meta: dict, key: str, step: float, widen: int) -> np.ndarray:
    return np.round(np.floor(meta[key] / (step * widen) + 1e-9) * step * widen, 6)


def _steps(cfg: Config) -> dict[str, float]:
    return {"teff_lo_k": cfg.clean.bin_teff_k, "logg_lo_dex": cfg.clean.bin_logg_dex, "mh_lo_dex": cfg.clean.bin_mh_dex}


def sequence(meta: dict, cfg: Config, fixed: tuple[str, ...], vary: str, n: int,
             classes: tuple[str, ...] = ("dwarf", "giant")) -> tuple[list[int], str]:
    """Row indices of ``meta`` (cln_kept columns) forming a sequence in ``vary`` (a bin lower edge)
    at fixed class and ``fixed`` bins: the group with the most distinct ``vary`` bins (the bins of
    ``fixed`` widened x2, x4, x8 until it reaches 3), up to ``n`` of them spread over the range,
    the highest-S/N spectrum of each. Returns the indices and a description of the group."""
    steps = _steps(cfg)
    best: tuple[int, list[int], str] = (0, [], "")
    for widen in WIDEN:
        keys = [_grid(meta, k, steps[k], widen) for k in fixed]
        for cls in classes:
            in_cls = meta["class"] == cls
            groups: dict[tuple, list[int]] = {}
            for i in np.flatnonzero(in_cls):
                groups.setdefault(tuple(k[i] for k in keys), []).append(int(i))
            for g, idx in sorted(groups.items()):
                values = sorted(set(meta[vary][idx]))
                if len(values) > best[0]:
                    pick = [values[int(round(j))] for j in np.linspace(0, len(values) - 1, min(n, len(values)))]
                    chosen = [max((i for i in idx if meta[vary][i] == v), key=lambda i: meta["snr_i"][i])
                              for v in dict.fromkeys(pick)]
                    what = ", ".join(f"{BIN_NAMES[k]} {v:g} to {v + steps[k] * widen:g}" for k, v in zip(fixed, g))
                    best = (len(values), chosen, f"{cls}s, {what}")
        if best[0] >= min(3, n):
            break
    return best[1], best[2]


def dwarf_giant_pairs(meta: dict, cfg: Config, n: int) -> tuple[list[tuple[int, int]], str]:
    """Up to ``n`` (dwarf, giant) row pairs of the same Teff and [M/H] bins (widened like ``sequence``
    until some exist), spread over Teff, the highest-S/N spectrum of each class."""
    steps = _steps(cfg)
    for widen in WIDEN:
        t = _grid(meta, "teff_lo_k", steps["teff_lo_k"], widen)
        m = _grid(meta, "mh_lo_dex", steps["mh_lo_dex"], widen)
        groups: dict[tuple, dict[str, int]] = {}
        for i in np.argsort(-meta["snr_i"], kind="stable"):
            groups.setdefault((t[i], m[i]), {}).setdefault(meta["class"][i], int(i))
        both = sorted(g for g, c in groups.items() if {"dwarf", "giant"} <= set(c))
        if both:
            pick = [both[int(round(j))] for j in np.linspace(0, len(both) - 1, min(n, len(both)))]
            return ([(groups[g]["dwarf"], groups[g]["giant"]) for g in dict.fromkeys(pick)],
                    f"pairs in the same {steps['teff_lo_k'] * widen:g} K x {steps['mh_lo_dex'] * widen:g} dex bins")
    return [], "no Teff x [M/H] bin holds both a kept dwarf and a kept giant"


def _spectra(con, obsids: list[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{obsid: (wavelength AA, flux / median)} of kept spectra on the cluster grid."""
    rows = con.execute("select obsid, loglam0, dloglam, flux, ivar from spc_cluster_grid where obsid in "
                       "(select unnest(?::bigint[]))", [list(map(int, obsids))]).fetchall()
    out = {}
    for obsid, l0, dl, flux, ivar in rows:
        f, iv = np.asarray(flux, dtype=float)[None], np.asarray(ivar, dtype=float)[None]
        out[int(obsid)] = (10 ** (l0 + dl * np.arange(f.shape[1])), normalised(f, iv)[0])
    return out


def _mark(ax, waves: tuple[float, ...], name: str) -> None:
    for w in waves:
        ax.axvline(w, color="0.3", ls=":", lw=1)
        ax.text(w, 1.0, f" {name} {w:g}", transform=ax.get_xaxis_transform(), fontsize=7, va="top", rotation=90)


def spectra_sequence(con, cfg: Config, out: Path, vary: str) -> Path | None:
    """Paper Fig. 11 (``vary='teff_lo_k'``) / 13 (``'mh_lo_dex'``): kept spectra of one class at fixed
    other bins, coloured by the varying label, TiO bands marked."""
    meta = columns(con, KEPT_META_SQL)
    fixed = tuple(k for k in ("teff_lo_k", "logg_lo_dex", "mh_lo_dex") if k != vary)
    idx, what = sequence(meta, cfg, fixed, vary, cfg.report.spectra_per_sequence)
    if len(idx) < 2:
        return None
    spec = _spectra(con, [meta["obsid"][i] for i in idx])
    label = vary.replace("_lo", "")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.8))
    values = np.array([meta[label][i] for i in idx])
    cmap = plt.get_cmap("jet")
    span = np.ptp(values) or 1.0
    for i, v in zip(idx, values):
        wave, y = spec[int(meta["obsid"][i])]
        ax.plot(wave, y, lw=0.7, color=cmap((v - values.min()) / span),
                label=f"{PARAM_LABELS[label].split(' (')[0]} {v:.0f}" if label == "teff_k" else f"[M/H] {v:+.2f}")
    _mark(ax, cfg.report.tio_bands_aa, "TiO")
    ax.set_xlabel("rest-frame wavelength (AA)")
    ax.set_ylabel("flux / median")
    ax.set_title(f"golden spectra (gold_sample on spc_cluster_grid) varying in {PARAM_LABELS[label]}: {what}", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, out, cfg)


def dwarf_giant_spectra(con, cfg: Config, out: Path) -> Path | None:
    """Paper Fig. 12: dwarf (black) and giant (red) kept spectra of the same Teff and [M/H] bins,
    offset per pair, the gravity-sensitive line pairs marked."""
    meta = columns(con, KEPT_META_SQL)
    pairs, what = dwarf_giant_pairs(meta, cfg, cfg.report.spectra_per_sequence)
    if not pairs:
        return None
    spec = _spectra(con, [meta["obsid"][i] for p in pairs for i in p])
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 1.2 + 1.6 * len(pairs)))
    for k, (d, g) in enumerate(pairs):
        for i, colour in ((d, "black"), (g, "red")):
            wave, y = spec[int(meta["obsid"][i])]
            ax.plot(wave, y + 1.5 * k, lw=0.7, color=colour)
        ax.text(1.005, (1.5 * k + 1), f"{meta['teff_k'][d]:.0f}/{meta['teff_k'][g]:.0f} K",
                transform=ax.get_yaxis_transform(), fontsize=7, va="center")
    _mark(ax, cfg.report.gravity_lines_aa, "")
    ax.set_xlabel("rest-frame wavelength (AA)")
    ax.set_ylabel("flux / median + offset")
    ax.set_title(f"dwarfs (black) vs giants (red), {what}; dotted: log g-sensitive K I / Na I pairs", fontsize=9)
    return _save(fig, out, cfg)


# --------------------------------------------------------------------------- the registry

LASPM = "lsp_* (the LASPM stage)"

# --------------------------------------------------------------------------- Figs 7-9: NN and leave-one-out

LAST_ITERATION = "(select max(iteration) from cln_nn_folds)"


def nn_loss(con, cfg: Config, out: Path) -> Path | None:
    """Paper Fig. 7: the training loss per epoch of every fold network of the last NN iteration, with the
    early-stopping validation R^2 (right axis): the curves that show whether a fit overfits."""
    rows = con.execute(f"select fold, loss_curve, validation_r2_curve from cln_nn_folds where fold >= 0 "
                       f"and iteration = {LAST_ITERATION} order by fold").fetchall()
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    twin = ax.twinx()
    for fold, loss, r2 in rows:
        line, = ax.plot(np.arange(1, len(loss) + 1), loss, lw=1.0, label=f"fold {fold}")
        twin.plot(np.arange(1, len(r2) + 1), r2, lw=0.8, ls="--", color=line.get_color())
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (standardised labels, + L2)")
    twin.set_ylabel("validation R^2 (dashed)")
    ax.set_title("NN loss of the last iteration's fold fits (cln_nn_folds); early stopping on R^2", fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, out, cfg)


def nn_test_set(con, cfg: Config, out: Path) -> Path | None:
    """Paper Fig. 8: held-out prediction vs label of the last iteration (left) and the histogram of the
    differences (right), per parameter; the removed stars in red."""
    d = columns(con, f"select teff_k, logg_dex, mh_dex, teff_pred_k, logg_pred_dex, mh_pred_dex, removed::int removed "
                     f"from cln_nn_predictions where fold is not null and iteration = {LAST_ITERATION}")
    if not len(d["teff_k"]):
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(3, 2, figsize=(8.5, 9.5))
    gone = d["removed"] > 0
    for row, (p, label) in enumerate(PARAM_UNITS):
        pred = d[p.replace("_k", "_pred_k").replace("_dex", "_pred_dex")]
        ax = axes[row, 0]
        ax.scatter(d[p][~gone], pred[~gone], s=4, c="k", lw=0)
        ax.scatter(d[p][gone], pred[gone], s=8, c="r", lw=0, label=f"removed ({gone.sum()})")
        lo, hi = np.nanmin(np.r_[d[p], pred]), np.nanmax(np.r_[d[p], pred])
        ax.plot([lo, hi], [lo, hi], "b--", lw=0.8)
        ax.set_xlabel(f"label {label}", fontsize=8)
        ax.set_ylabel(f"held-out prediction {label}", fontsize=8)
        diff = (pred - d[p])[~gone]
        sig = 1.4826 * np.nanmedian(np.abs(diff - np.nanmedian(diff)))
        axes[row, 1].hist(diff, bins=40, color="0.55")
        axes[row, 1].set_xlabel(f"prediction - label, {label}", fontsize=8)
        axes[row, 1].set_title(f"median {np.nanmedian(diff):+.3g}, robust sigma {sig:.3g}", fontsize=8)
        if gone.any():
            ax.legend(fontsize=7)
    fig.suptitle("NN held-out predictions of the last iteration (cln_nn_predictions; paper Fig. 8)", fontsize=9)
    fig.tight_layout()
    return _save(fig, out, cfg)


def loo_residuals(con, cfg: Config, out: Path) -> Path | None:
    """Paper Fig. 9: left, histograms of derived - label of the leave-one-out per parameter; right, the
    golden labels (black) in the Teff-log g plane with a red line to each star's derived labels (the pull
    of the edge stars toward the interior)."""
    d = columns(con, "select teff_k, logg_dex, mh_dex, teff_loo_k, logg_loo_dex, mh_loo_dex from gold_loo "
                     "where teff_loo_k is not null")
    if not len(d["teff_k"]):
        return None
    plt = _pyplot()
    fig = plt.figure(figsize=(11, 6.5))
    for row, (p, label) in enumerate(PARAM_UNITS):
        ax = fig.add_subplot(3, 2, 2 * row + 1)
        diff = d[p.replace("_k", "_loo_k").replace("_dex", "_loo_dex")] - d[p]
        sig = 1.4826 * np.median(np.abs(diff - np.median(diff)))
        ax.hist(diff, bins=40, color="0.55")
        ax.set_title(f"derived - label, {label}: median {np.median(diff):+.3g}, robust sigma {sig:.3g}", fontsize=8)
    ax = fig.add_subplot(1, 2, 2)
    ax.plot(np.c_[d["teff_k"], d["teff_loo_k"]].T, np.c_[d["logg_dex"], d["logg_loo_dex"]].T, "r-", lw=0.6)
    ax.scatter(d["teff_k"], d["logg_dex"], s=4, c="k", lw=0, zorder=3)
    ax.invert_xaxis()
    ax.invert_yaxis()
    ax.set_xlabel("Teff (K)")
    ax.set_ylabel("log g (dex)")
    ax.set_title("labels (black) -> derived (red), leave-one-out (gold_loo)", fontsize=8)
    fig.suptitle("leave-one-out of the golden sample (paper Fig. 9)", fontsize=9)
    fig.tight_layout()
    return _save(fig, out, cfg)


# --------------------------------------------------------------------------- Figs 14, 16-20: LASPM (§4)

LASPM_LIBRARY = "golden"           # the result set the paper's figures show; the others are in the tables
PARAM_UNITS = (("teff_k", "Teff (K)"), ("logg_dex", "log g (dex)"), ("mh_dex", "[M/H] (dex)"))


def laspm_kiel(con, cfg: Config, out: Path) -> Path | None:
    """Paper Fig. 14: the LASPM Kiel diagram of every M spectrum (golden library), [M/H] colour."""
    return kiel(con, cfg, out, f"(select * from lsp_results where library = '{LASPM_LIBRARY}' "
                                f"and flags & 32 = 0) as lsp_results")


def precision_vs_snr(con, cfg: Config, out: Path) -> Path | None:
    """Paper Fig. 16: the sigma of epsilon per S/N step, for each library."""
    rows = columns(con, "select library, param, snr_lo, sigma, n from lsp_precision where snr_lo is not null "
                        "and snr_lo < 100 and n >= 5 order by library, param, snr_lo")
    if not len(rows["param"]):
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(3, 1, figsize=(6.4, 7.5), sharex=True)
    for ax, (p, label) in zip(axes, PARAM_UNITS):
        for lib in sorted(set(rows["library"])):
            k = (rows["param"] == p) & (rows["library"] == lib)
            ax.plot(rows["snr_lo"][k] + cfg.laspm.precision_snr_step / 2, rows["sigma"][k], "o-", ms=3, label=lib)
        ax.set_ylabel(f"sigma of epsilon, {label}", fontsize=8)
    axes[0].legend(fontsize=7)
    axes[-1].set_xlabel("S/N_i")
    fig.suptitle("LASPM precision from repeat visits vs S/N (paper Fig. 16)", fontsize=9)
    return _save(fig, out, cfg)


def epsilon_histograms(con, cfg: Config, out: Path) -> Path | None:
    """Paper Fig. 17: histograms of epsilon for S/N >= 10 with the Gaussian of sigma (1.4826 MAD)."""
    eps = columns(con, f"select param, eps from lsp_repeat_eps where library = '{LASPM_LIBRARY}' "
                       f"and snr_i >= {float(cfg.laspm.precision_snr_min)}")
    sig = dict(con.execute(f"select param, sigma from lsp_precision where library = '{LASPM_LIBRARY}' "
                           "and snr_lo is null").fetchall())
    if not len(eps["param"]):
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    for ax, (p, label) in zip(axes, PARAM_UNITS):
        e = eps["eps"][eps["param"] == p]
        s = sig.get(p) or np.nan
        lim = 5 * s if np.isfinite(s) and s > 0 else np.nanmax(np.abs(e))
        ax.hist(e, bins=40, range=(-lim, lim), color="0.6")
        if np.isfinite(s) and s > 0:
            x = np.linspace(-lim, lim, 200)
            width = 2 * lim / 40
            ax.plot(x, len(e) * width * np.exp(-0.5 * (x / s) ** 2) / (s * np.sqrt(2 * np.pi)), "r-", lw=1.2)
        ax.set_title(f"{label}: sigma {s:.3g}", fontsize=8)
        ax.set_xlabel(f"epsilon, {label}", fontsize=8)
    fig.suptitle(f"repeat-visit epsilon, S/N >= {cfg.laspm.precision_snr_min:g} (paper Fig. 17)", fontsize=9)
    return _save(fig, out, cfg)


def _one_to_one(con, cfg: Config, out: Path, sql: str, params: list, title: str) -> Path | None:
    rows = columns(con, sql, params)
    if not len(rows["param"]):
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    for ax, (p, label) in zip(axes, PARAM_UNITS):
        k = rows["param"] == p
        ref, got = rows["ref"][k], rows["value"][k]
        ax.hexbin(ref, got, gridsize=40, mincnt=1, cmap="viridis", bins="log")
        lo, hi = np.nanmin(np.r_[ref, got]), np.nanmax(np.r_[ref, got])
        ax.plot([lo, hi], [lo, hi], "r--", lw=0.8)
        d = got - ref
        ax.set_title(f"{label}: median {np.nanmedian(d):+.3g}, 1.4826 MAD "
                     f"{1.4826 * np.nanmedian(np.abs(d - np.nanmedian(d))):.3g}", fontsize=8)
        ax.set_xlabel(f"reference {label}", fontsize=8)
        ax.set_ylabel(f"LASPM {label}", fontsize=8)
    fig.suptitle(title, fontsize=9)
    return _save(fig, out, cfg)


PAIRS_SQL = ("select param, value, ref_value as ref from lsp_comparison_pairs where library = ? and reference = ?")


def vs_starhorse(con, cfg: Config, out: Path) -> Path | None:
    """Paper Fig. 18: LASPM against StarHorse (S/N_i > laspm.compare_snr_min)."""
    return _one_to_one(con, cfg, out, PAIRS_SQL, [LASPM_LIBRARY, "starhorse"], "LASPM vs StarHorse (paper Fig. 18)")


def vs_apogee(con, cfg: Config, out: Path, cls: str) -> Path | None:
    """Paper Figs 19-20: LASPM against ASPCAP shifted by its measured offsets, dwarfs or giants."""
    return _one_to_one(con, cfg, out, PAIRS_SQL + " and class = ?", [LASPM_LIBRARY, "apogee", cls],
                       f"LASPM vs shifted ASPCAP, {cls}s (paper Fig. {19 if cls == 'dwarf' else 20})")


FIGURES: tuple[Figure, ...] = (
    Figure(1, "CMD selection of M dwarfs", partial(cmd_selection, cls="dwarf"),
           ("sel_primary", "sel_stars", "sel_cmd_bins", "sel_cmd_curve", "sel_cmd_fit"),
           "§2.1.1: binned mean M_G with 1 sigma, first-order fit, box = fit +- mean 1 sigma, M_G limits."),
    Figure(2, "CMD selection of M giants", partial(cmd_selection, cls="giant"),
           ("sel_primary", "sel_stars", "sel_cmd_bins", "sel_cmd_curve", "sel_cmd_fit"),
           "§2.1.2: third-order fit, box = fit +- mean 1 sigma, BP-RP limits."),
    Figure(3, "Dwarf catalogues - StarHorse", partial(offset_histograms, cls="dwarf"),
           ("lbl_offsets", "lbl_starhorse_deltas"), "§2.2.1: ASPCAP, Ding22, LASPM with the fitted Gaussians.",
           wide=True),
    Figure(4, "Giant catalogues - StarHorse", partial(offset_histograms, cls="giant"),
           ("lbl_offsets", "lbl_starhorse_deltas"), "§2.2.2: ASPCAP, Qiu23 with the fitted Gaussians.", wide=True),
    Figure(5, "Supplement on the CMD, coloured by log g", supplement_cmd,
           ("lbl_supplement", "lbl_labelled_sample", "sel_stars"), "§2.2.3: the high-S/N ASPCAP stars added."),
    Figure(6, "One bin clustered at eps 1.0 and 2.0", eps_bin, ("cln_dbscan", "cln_bins", "spc_cluster_grid"),
           "§2.4: gray all spectra of the bin, red its main DBSCAN cluster.", wide=True),
    Figure(7, "NN loss of the last training", nn_loss, ("cln_nn_folds",),
           "§2.5: one network per fold, early stopping on the validation R^2 (dashed) instead of 10,000 fits."),
    Figure(8, "NN test set: predicted vs label", nn_test_set, ("cln_nn_predictions", "cln_nn_folds"),
           "§2.5: every star's held-out prediction (K folds) in the last iteration; red: removed.", wide=True),
    Figure(9, "Leave-one-out: derived - label, edge pull", loo_residuals, ("gold_loo",),
           "§3.1: each golden spectrum fitted by the LASPM engine against all the others.", wide=True),
    Figure(10, "Kiel diagram of the golden sample, [M/H] colour, PARSEC isochrones",
           partial(kiel, relation="gold_sample"), ("gold_sample",),
           "§3.2.1: isochrones from landing.isochrones when ingested."),
    Figure(11, "Spectra along Teff", partial(spectra_sequence, vary="teff_lo_k"),
           ("gold_sample", "cln_kept", "spc_cluster_grid"),
           "§3.2.2: same log g and [M/H] bins, TiO 7050 / 8430 AA marked.", wide=True),
    Figure(12, "Dwarf vs giant spectra", dwarf_giant_spectra, ("gold_sample", "cln_kept", "spc_cluster_grid"),
           "§3.2.2: same Teff and [M/H] bins, the 7680 / 8190 AA line pairs marked.", wide=True),
    Figure(13, "Spectra along [M/H]", partial(spectra_sequence, vary="mh_lo_dex"),
           ("gold_sample", "cln_kept", "spc_cluster_grid"),
           "§3.2.2: same Teff and log g bins, TiO marked.", wide=True),
    Figure(14, "LASPM Kiel diagram of all M spectra", laspm_kiel, ("lsp_results",), "§4.1"),
    Figure(16, "LASPM precision vs S/N", precision_vs_snr, ("lsp_precision",), "§4.2"),
    Figure(17, "Histograms of epsilon (repeat precision)", epsilon_histograms, ("lsp_repeat_eps", "lsp_precision"),
           "§4.2", wide=True),
    Figure(18, "LASPM vs StarHorse", vs_starhorse, ("lsp_comparison_pairs",), "§4.3", wide=True),
    Figure(19, "LASPM vs adjusted ASPCAP, dwarfs", partial(vs_apogee, cls="dwarf"), ("lsp_comparison_pairs",),
           "§4.4", wide=True),
    Figure(20, "LASPM vs adjusted ASPCAP, giants", partial(vs_apogee, cls="giant"), ("lsp_comparison_pairs",),
           "§4.4", wide=True),
)
