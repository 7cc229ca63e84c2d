"""The golden sample's figures beside the paper's (§2.5, §3), and on a synthetic build its accuracy (``mgold report golden``).

- *NN cleaning* (§2.5): ``nn_summary`` of the warehouse's ``cln_nn_*`` tables read back
  (``NNResult.from_tables``): held-out scatter of the last iteration's survivors (robust sigma =
  1.4826 MAD, as everywhere in mgold) beside the paper's 14 K / 0.06 / 0.05 dex, and the stars removed
  beside its 27 of 5,132.
- *Leave-one-out* (§3.1): ``gold_loo``, derived - label per parameter, all stars and per class:
  median (bias) and robust sigma (scatter) beside the paper's 11 K / 0.05 / 0.05 dex. The paper's
  figure is one scatter; it does not say which statistic.
- *Edge table* (Fig. 9, right): the same residuals by the star's distance inside the convex hull of
  the golden labels (``hull_dist_steps``, in bin steps), with the *inward pull*: the residual vector
  (in bin steps) projected on the unit vector from the star to the centroid of the golden labels;
  positive = derived labels pulled toward the interior, the paper's edge effect.
- *Real spectra* (MILES): the same leave-one-out (``stages.golden.leave_one_out``) on the ingested
  MILES K/M stars of ``landing.library_spectra`` (``mgold ingest library miles``) against their MILES
  labels, dwarfs and giants separately (and the M stars, Teff < ``M_TEFF_MAX_K``): a star with NULL
  labels is neither fitted nor a template.
- *Truth* (synthetic builds only): golden label - truth (``truth.stars`` of the observed star) per
  parameter and class, bias (median) with its standard error (1.2533 sigma / sqrt(n)) and scatter;
  the LOO-derived labels - truth; and how many truly defective spectra reached the golden sample.
"""

from __future__ import annotations

import numpy as np

from ..config import Config
from ..runner import recorded_config
from ..stages.golden import LOO_NAMES, LOO_RESID_NAMES, leave_one_out, usable_templates
from ..stages.nn import EXCLUDED_FOLD, LABELS, PAPER as NN_PAPER, NNResult, nn_summary, robust_sigma
from ..stages.spectra import grid
from .clean import CAUGHT
from .relations import relation_state

PAPER_LOO = {"teff_k": 11.0, "logg_dex": 0.05, "mh_dex": 0.05}        # §3.1 scatter
PAPER_GOLDEN = {"n": 5105, "aspcap": 881, "qiu23": 1395, "ding22": 1651, "laspm": 1178}   # §3.2
HULL_CLASSES = ((0.0, 0.0), (0.0, 1.0), (1.0, 2.0), (2.0, 4.0), (4.0, np.inf))   # bin steps inside the hull
M_TEFF_MAX_K = 4000.0           # "M stars" of the MILES K/M set (M0 ~ 3850-4000 K)
MILES = "miles"


def _stats(x: np.ndarray) -> dict:
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return {"n": int(x.size), "bias": float(np.median(x)) if x.size else float("nan"),
            "scatter": robust_sigma(x), "std": float(np.std(x)) if x.size else float("nan"),
            "se": 1.2533 * robust_sigma(x) / np.sqrt(x.size) if x.size else float("nan")}


def residual_rows(resid: np.ndarray, groups: dict[str, np.ndarray]) -> list[dict]:
    """Per group (name -> row mask): n and per parameter the _stats of ``resid`` (n, 3)."""
    out = []
    for name, m in groups.items():
        if not m.any():
            continue
        out.append({"group": name, "n": int(m.sum()),
                    **{p: _stats(resid[m, j]) for j, p in enumerate(LABELS)}})
    return out


def _class_groups(cls: np.ndarray) -> dict[str, np.ndarray]:
    return {"all": np.ones(cls.size, bool), **{c: cls == c for c in ("dwarf", "giant")}}


def _columns(con, sql: str, params: list | None = None) -> dict[str, np.ndarray]:
    t = con.sql(sql, params=params).to_arrow_table() if params else con.sql(sql).to_arrow_table()
    return {c: t[c].to_numpy(zero_copy_only=False) for c in t.column_names}


# --------------------------------------------------------------------------- NN (§2.5)

def nn_report(con) -> dict:
    """``nn_summary`` of the built cln_nn_* tables, plus the epochs of the fold fits."""
    per_star = con.sql("select * from cln_nn_predictions").to_arrow_table()
    folds = con.sql(f"select * from cln_nn_folds where fold <> {EXCLUDED_FOLD}").to_arrow_table()
    state = con.execute("select any_value(converged), any_value(stop_reason) from cln_nn_folds").fetchone()
    n = recorded_config(con, "cln_nn_folds").nn
    res = NNResult.from_tables(per_star, folds, [n.max_dteff_k, n.max_dlogg_dex, n.max_dmh_dex], state[0], state[1])
    out = nn_summary(res)
    epochs = [f.n_epochs for f in res.folds]
    out["epochs"] = (min(epochs), int(np.median(epochs)), max(epochs)) if epochs else None
    out["n_fits"] = len(res.folds)
    return out


# --------------------------------------------------------------------------- leave-one-out (§3.1)

def edge_rows(labels: np.ndarray, derived: np.ndarray, hull_dist: np.ndarray, steps: np.ndarray) -> list[dict]:
    """Paper Fig. 9's edge effect: per class of distance inside the hull, n, the median residual per
    parameter, the median inward pull (bin steps) and the share of stars pulled inward."""
    x, d = labels / steps, derived / steps
    centroid = np.nanmean(x, axis=0)
    toward = centroid[None, :] - x
    norm = np.linalg.norm(toward, axis=1, keepdims=True)
    u = np.divide(toward, norm, out=np.zeros_like(toward), where=norm > 0)
    pull = ((d - x) * u).sum(axis=1)
    ok = np.isfinite(pull) & np.isfinite(hull_dist)
    rows = []
    for lo, hi in HULL_CLASSES:
        m = ok & ((hull_dist == 0) if hi == 0 else (hull_dist > lo) & (hull_dist <= hi))
        if not m.any():
            continue
        rows.append({"class": "on the hull" if hi == 0 else f"{lo:g}-{hi:g}", "n": int(m.sum()),
                     **{p: float(np.median((derived - labels)[m, j])) for j, p in enumerate(LABELS)},
                     "pull_steps": float(np.median(pull[m])), "pulled_inward": float((pull[m] > 0).mean())})
    return rows


def loo_report(con, cfg: Config) -> dict:
    t = _columns(con, "select * from gold_loo order by obsid")
    labels = np.column_stack([t[c].astype(float) for c in LABELS])
    derived = np.column_stack([t[c].astype(float) for c in LOO_NAMES])
    resid = np.column_stack([t[c].astype(float) for c in LOO_RESID_NAMES])
    steps = np.array([cfg.clean.bin_teff_k, cfg.clean.bin_logg_dex, cfg.clean.bin_mh_dex])
    flags = t["flags"].astype(int)
    return {"rows": residual_rows(resid, _class_groups(np.asarray(t["class"], dtype=object))),
            "n": int(labels.shape[0]), "n_edge": int((flags & 1 > 0).sum()), "n_no_fit": int((flags & 32 > 0).sum()),
            "edge": edge_rows(labels, derived, t["hull_dist_steps"].astype(float), steps)}


def library_loo(con, cfg: Config, library: str = MILES) -> dict | None:
    """Leave-one-out on the ingested library ``library`` (None when it is not ingested)."""
    if relation_state(con, "landing.library_spectra") is not None:
        return None
    t = _columns(con, "select template_id, name, class, teff_k, logg_dex, mh_dex, flux, ivar "
                      "from landing.library_spectra where library = ? order by template_id", [library])
    if not len(t["template_id"]):
        return None
    labels = np.column_stack([np.asarray(t[c], dtype=float) for c in LABELS])
    ok = usable_templates(labels)
    n_pix = grid(cfg, "red")[2]
    flux = np.stack(t["flux"][ok]).astype(np.float32) if ok.any() else np.empty((0, n_pix), np.float32)
    ivar = np.stack(t["ivar"][ok]).astype(np.float32) if ok.any() else np.empty((0, n_pix), np.float32)
    if flux.shape[1] != n_pix:
        raise ValueError(f"landing.library_spectra ({library}) has {flux.shape[1]} pixels, the red grid {n_pix}: "
                         "re-ingest it with this config")
    fit = leave_one_out(flux, ivar, labels[ok], cfg)
    cls = np.asarray(t["class"], dtype=object)[ok]
    resid = fit.labels - labels[ok]
    groups = {**_class_groups(cls), **{f"{c}, Teff < {M_TEFF_MAX_K:g} K": (cls == c) & (labels[ok, 0] < M_TEFF_MAX_K)
                                       for c in ("dwarf", "giant")}}
    return {"library": library, "n_stars": int(len(ok)), "n_null_labels": int((~ok).sum()),
            "n_no_fit": int((fit.flags & 32 > 0).sum()), "n_edge": int((fit.flags & 1 > 0).sum()),
            "rows": residual_rows(resid, groups)}


# --------------------------------------------------------------------------- truth (synthetic)

TRUTH_SQL = """
select g.obsid, g.class, g.teff_k, g.logg_dex, g.mh_dex, g.teff_loo_k, g.logg_loo_dex, g.mh_loo_dex,
       coalesce(t.defect, 'none') as defect, s.teff_k as true_teff_k, s.logg_dex as true_logg_dex,
       s.mh_dex as true_mh_dex
from gold_sample g
left join truth.spectra t using (obsid)
left join truth.stars s on s.star_id = t.star_id
"""


def truth_report(con) -> dict:
    t = _columns(con, TRUTH_SQL)
    true = np.column_stack([t[f"true_{c}"].astype(float) for c in LABELS])
    cls = np.asarray(t["class"], dtype=object)
    defect = np.asarray(t["defect"], dtype=object)
    labels = np.column_stack([t[c].astype(float) for c in LABELS])
    derived = np.column_stack([t[c].astype(float) for c in LOO_NAMES])
    kinds, counts = np.unique(defect[np.isin(defect, CAUGHT)], return_counts=True)
    return {"labels": residual_rows(labels - true, _class_groups(cls)),
            "loo": residual_rows(derived - true, _class_groups(cls)),
            "n": int(len(defect)), "n_defective": int(np.isin(defect, CAUGHT).sum()),
            "defective_by_kind": dict(zip(kinds.tolist(), counts.tolist()))}


def golden_report(con) -> dict:
    """Every figure of `mgold report golden`, as a dict (truth parts only on a synthetic build)."""
    from .labels import has_truth

    cfg = recorded_config(con, "gold_loo")
    by_source = dict(con.execute("select label_source, count(*) from gold_sample group by 1").fetchall())
    out = {"n_golden": sum(by_source.values()), "by_source": by_source, "nn": nn_report(con),
           "loo": loo_report(con, cfg), "miles": library_loo(con, cfg)}
    if has_truth(con) and relation_state(con, "truth.spectra") is None:
        out["truth"] = truth_report(con)
    return out


# --------------------------------------------------------------------------- text

def _v(p: str, v: float, sign: bool = True) -> str:
    if v is None or not np.isfinite(v):
        return "-"
    return (f"{v:+.1f}" if sign else f"{v:.1f}") if p == "teff_k" else (f"{v:+.3f}" if sign else f"{v:.3f}")


def _paper_trio(d: dict) -> str:
    return f"{d['teff_k']:g} K / {d['logg_dex']:g} / {d['mh_dex']:g} dex"


def residual_table(rows: list[dict], with_se: bool = False) -> list[str]:
    """Lines: group, n, then per parameter 'bias (scatter)' [+- se]."""
    out = [f"  {'group':<22s} {'n':>5s}  " + "  ".join(f"{p:>24s}" for p in LABELS)]
    for r in rows:
        cells = []
        for p in LABELS:
            s = r[p]
            se = f" +-{_v(p, s['se'], False)}" if with_se else ""
            cells.append(f"{_v(p, s['bias']) + se + ' (' + _v(p, s['scatter'], False) + ')':>24s}")
        out.append(f"  {r['group']:<22s} {r['n']:>5d}  " + "  ".join(cells))
    return out


def format_golden(rep: dict) -> str:
    nn, loo = rep["nn"], rep["loo"]
    src = rep["by_source"]
    lines = [f"golden sample: {rep['n_golden']:,} spectra (paper {PAPER_GOLDEN['n']:,}); from "
             + ", ".join(f"{k} {src.get(k, 0):,} (paper {PAPER_GOLDEN[k]:,})" for k in ("aspcap", "qiu23", "ding22",
                                                                                       "laspm"))]
    sc = nn["scatter"]
    lines += [
        "",
        f"NN cleaning (§2.5): {nn['n_entered']:,} stars entered ({nn['n_excluded']} could not: few good pixels or "
        f"NaN labels), {nn['n_iterations']} iteration(s), {nn['stop_reason']}; {nn['n_fits']} fold fits, epochs "
        + (f"{nn['epochs'][0]}-{nn['epochs'][2]} (median {nn['epochs'][1]})" if nn["epochs"] else "-"),
        f"  removed {nn['n_removed']:,} of {nn['n_entered']:,} ({nn['removed_fraction']:.2%}); paper "
        f"{nn['paper_removed']} of {nn['paper_input']:,} ({nn['paper_removed_fraction']:.2%}); per iteration "
        + ", ".join(str(x) for x in nn["removed_per_iteration"]),
        "  held-out scatter of the survivors (robust sigma; std):  "
        + ", ".join(f"{p} {_v(p, sc[p]['robust_sigma'], False)} ({_v(p, sc[p]['std'], False)})" for p in LABELS)
        + f";  paper {_paper_trio(NN_PAPER['scatter'])}",
        "  removal limits raised to nn.limit_nsigma robust sigmas for: " + (", ".join(nn["limited_by_scatter"]) or
                                                                            "none (the paper's limits held)"),
        "",
        f"leave-one-out (§3.1): {loo['n']:,} golden spectra each fitted against all the others; derived - label: "
        f"median (robust sigma); paper scatter {_paper_trio(PAPER_LOO)}; {loo['n_edge']} flagged edge of library, "
        f"{loo['n_no_fit']} no fit",
        *residual_table(loo["rows"]),
        "  edge effect (Fig. 9): by distance inside the hull of the golden labels (bin steps); median derived - "
        "label; inward pull = residual toward the centroid (bin steps)",
        f"  {'inside by':<12s} {'n':>5s} {'teff_k':>8s} {'logg_dex':>9s} {'mh_dex':>8s} {'pull':>7s} {'inward':>7s}",
        *[f"  {r['class']:<12s} {r['n']:>5d} {_v('teff_k', r['teff_k']):>8s} {_v('logg_dex', r['logg_dex']):>9s} "
          f"{_v('mh_dex', r['mh_dex']):>8s} {r['pull_steps']:>+7.2f} {r['pulled_inward']:>7.0%}" for r in loo["edge"]],
    ]
    m = rep.get("miles")
    lines.append("")
    if m is None:
        lines.append("real spectra: MILES not ingested (mgold ingest library miles "
                     "../shared/data/real/libraries/miles_k_m_stars -w W) - no real-spectra leave-one-out")
    else:
        lines += [f"real spectra: leave-one-out on the {m['n_stars'] - m['n_null_labels']} MILES K/M stars with labels "
                  f"({m['n_null_labels']} without), each against all the others; derived - MILES label: median "
                  f"(robust sigma); {m['n_edge']} edge of library, {m['n_no_fit']} no fit",
                  *residual_table(m["rows"])]
    t = rep.get("truth")
    if t:
        lines += ["", f"golden labels vs synthetic truth ({t['n']:,} spectra): bias +- se (scatter)",
                  *residual_table(t["labels"], with_se=True),
                  "  leave-one-out derived labels vs truth:", *residual_table(t["loo"], with_se=True),
                  f"  truly defective spectra in the golden sample: {t['n_defective']}"
                  + (" (" + ", ".join(f"{k} {v}" for k, v in t["defective_by_kind"].items()) + ")"
                     if t["defective_by_kind"] else "") + " (target on demo: none)"]
    return "\n".join(lines)
