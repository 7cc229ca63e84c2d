"""Accuracy of the cleaning stage against the synthetic truth (paper §2.3-2.4; issue 5).

Definitions (spectra = the one spectrum per labelled star that entered clustering,
i.e. the rows of ``cln_dbscan``):

- *accepted*: member of its bin's main DBSCAN cluster (before the cap of
  ``clean.cap_per_bin``: the cap drops good spectra on purpose, so it says nothing
  about accuracy).
- *defect recall*: among spectra with an injected defect of the four kinds the
  cleaning must catch (wrong object, broken segment, swapped labels, wrong RV), the
  fraction NOT accepted. Reported over all bins (a spectrum in a bin that goes to
  inspection is not auto-accepted) and, stricter, over bins where DBSCAN found a
  cluster only. Cosmic rays are a different kind of defect (a few spiky pixels) and
  count as neither defective nor clean.
- *eligible clean spectra*: clean spectra (no injected defect) in bins holding at
  least min_pts clean spectra, i.e. bins where DBSCAN could form a cluster of
  clean spectra at all. *kept fraction* = eligible clean spectra accepted.
- *label-accurate* eligible clean spectra: those whose transferred labels are
  within one bin step of the truth in all three parameters (|dTeff| <= bin_teff_k,
  |dlog g| <= bin_logg_dex, |d[M/H]| <= bin_mh_dex). "Clean" above means only "no
  injected defect": about half of those carry catalogue label errors larger than a
  bin, and a spectrum that does not match its labels is what the cleaning exists to
  drop (the golden sample's labels must be precise). Both fractions are reported.
- *noise-free ceiling*: the kept fraction DBSCAN (same eps and minPts) reaches on
  the eligible clean spectra of a bin when each is replaced by its star's
  noise-free intrinsic spectrum from the generator, with the same masks,
  normalisation, recalibration and weights. It is what eps = 1.0 allows on this
  universe at all: the label errors of the catalogues spread a 50 K bin's true
  Teff over ~+-100 K, so some clean same-bin stars truly differ by more than eps.
  Approximate: the observed spectra went through two resamplings (the RV shift
  and the rest-frame grid), which smooth sharp features a little; the intrinsic
  ones did not, so small bins can come out slightly above it.
- *noise sd of D^2*: the standard deviation the photon noise gives the squared
  distance of each clean same-bin pair (from ivar, see udfs/spectral_distance.py),
  to compare with eps^2: where it is >~ eps^2 the cluster decision is noise-limited.
- *RV residual*: LAMOST 1D-pipeline RV used for the rest frame minus the true RV,
  in km/s, over the processed spectra without a wrong-RV defect (median, robust
  sigma = 1.4826 MAD, 99th percentile of |residual|). And what is left in the
  processed spectra: the shift of each rest-frame spectrum against its reference
  model SED, measured by cross-correlation of the continuum-divided spectra
  (parabola through the peak, 1 pixel = c ln(10) dloglam ~ 69 km/s), compared with
  the residual the truth predicts (rv_true - rv used): median and robust sigma of
  the difference, over at most ``max_ccf`` spectra.
"""

from __future__ import annotations

import numpy as np

from ..config import DEFAULT, Config
from ..runner import recorded_config
from ..stages.clean import SOURCE_SQL, distance_params, iter_bin_chunks, min_pts, prepare_bin
from .relations import relation_state

SNR_CLASSES = ((0.0, 15.0), (15.0, 25.0), (25.0, 40.0), (40.0, float("inf")))

CAUGHT = ("wrong_object", "broken_segment", "swapped_labels", "wrong_rv")
CLEAN = "none"


def evaluate(con, cfg: Config | None = None) -> dict:
    """Every figure of the report, as a dict (reads truth.spectra; models never do).

    ``cfg``: the config the clean layer was built with (default: read from meta)."""
    cfg = recorded_config(con, "cln_dbscan") if cfg is None else cfg
    rows = con.execute("""
        select d.bin_id, d.obsid, d.min_pts, d.in_main_cluster, k.is_kept, d.n_clusters,
               coalesce(t.defect, 'none') as defect, d.snr_i,
               abs(l.teff_k - st.teff_k) <= ? and abs(l.logg_dex - st.logg_dex) <= ?
                   and abs(l.mh_dex - st.mh_dex) <= ? as label_accurate
        from cln_dbscan d join cln_keep_rank k using (obsid) left join truth.spectra t using (obsid)
        left join lbl_labelled_sample l using (obsid)
        left join truth.stars st on st.star_id = t.star_id""",
                       [cfg.clean.bin_teff_k, cfg.clean.bin_logg_dex, cfg.clean.bin_mh_dex]).fetchall()
    if not rows:
        raise ValueError("cln_dbscan is empty: nothing to evaluate (build the clean layer first)")
    bins = np.array([r[0] for r in rows], dtype=object)
    obsid = np.array([r[1] for r in rows])
    min_pts_ = np.array([r[2] for r in rows])
    accepted = np.array([bool(r[3]) for r in rows])
    clustered_bin = np.array([r[5] > 0 for r in rows])
    defect = np.array([r[6] for r in rows], dtype=object)
    snr = np.array([r[7] for r in rows], dtype=float)
    label_accurate = np.array([bool(r[8]) for r in rows])
    is_bad = np.isin(defect, CAUGHT)
    is_clean = defect == CLEAN
    n_clean_in_bin = {b: 0 for b in set(bins)}
    for b, c in zip(bins, is_clean):
        n_clean_in_bin[b] += int(c)
    eligible = is_clean & np.array([n_clean_in_bin[b] >= m for b, m in zip(bins, min_pts_)])

    def frac(num, den):
        return float(num.sum() / den.sum()) if den.sum() else float("nan")

    pairs = _pair_figures(con, cfg)
    ceiling = eligible & np.isin(obsid, list(pairs["ceiling_obsids"]))
    out = {
        "n_spectra": len(rows),
        "n_bins": len(n_clean_in_bin),
        "eps": float(cfg.clean.dbscan_eps),
        "n_defective": int(is_bad.sum()),
        "defect_recall": frac(is_bad & ~accepted, is_bad),
        "defect_recall_clustered_bins": frac(is_bad & clustered_bin & ~accepted, is_bad & clustered_bin),
        "n_defective_clustered_bins": int((is_bad & clustered_bin).sum()),
        "recall_by_defect": {d: frac((defect == d) & ~accepted, defect == d) for d in CAUGHT},
        "n_by_defect": {d: int((defect == d).sum()) for d in CAUGHT},
        "n_eligible_clean": int(eligible.sum()),
        "kept_fraction_eligible": frac(eligible & accepted, eligible),
        "kept_fraction_noise_free_ceiling": frac(ceiling, eligible),
        "n_eligible_label_accurate": int((eligible & label_accurate).sum()),
        "kept_fraction_label_accurate": frac(eligible & label_accurate & accepted, eligible & label_accurate),
        "kept_fraction_label_inaccurate": frac(eligible & ~label_accurate & accepted, eligible & ~label_accurate),
        "kept_fraction_by_snr": {f"{lo:g}-{hi:g}": (frac(eligible & accepted & (snr >= lo) & (snr < hi),
                                                         eligible & (snr >= lo) & (snr < hi)),
                                                    frac(ceiling & (snr >= lo) & (snr < hi),
                                                         eligible & (snr >= lo) & (snr < hi)),
                                                    int((eligible & (snr >= lo) & (snr < hi)).sum()))
                                 for lo, hi in SNR_CLASSES},
        "accepted_purity": frac(accepted & ~is_bad, accepted),
        "n_clean_pairs": pairs["n_clean_pairs"],
        "clean_pair_noise_sd_d2": pairs["noise_sd_d2"],
        "clean_pair_noise_sd_d2_by_snr": pairs["noise_sd_d2_by_snr"],
    }
    kept = con.execute("""select coalesce(t.defect, 'none') from cln_kept k
                          left join truth.spectra t using (obsid)""").fetchall()
    kd = np.array([r[0] for r in kept], dtype=object)
    out["n_kept"] = len(kd)
    out["kept_defective_fraction"] = float(np.isin(kd, CAUGHT).mean()) if len(kd) else float("nan")
    if relation_state(con, "cln_suggestions") in (None, "empty"):
        out["suggestions"] = suggestion_figures(con, cfg)
    if relation_state(con, "cln_nn_kept") in (None, "empty"):
        capped = accepted & ~np.array([bool(r[4]) for r in rows])
        out["combined"] = combined_figures(con, obsid, is_bad, is_clean, eligible, capped)
    out.update(rv_residuals(con))
    out.update(rest_frame_residuals(con, cfg))
    return out


def _rates(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float, int, int]:
    """(precision, recall, n predicted, n true) of a boolean prediction."""
    tp = (pred & truth).sum()
    return (float(tp / pred.sum()) if pred.sum() else float("nan"),
            float(tp / truth.sum()) if truth.sum() else float("nan"), int(pred.sum()), int(truth.sum()))


def suggestion_figures(con, cfg: Config) -> dict:
    """The suggestions of cln_suggestions against the truth: precision and recall of keep (clean
    spectra) and of reject (defective spectra), per reason of the bin, over every suggestion and over
    those cln_kept accepts (confidence >= clean.suggestion_min_confidence); cosmic rays count as
    neither. Plus the remaining manual queue (cln_inspection_queue status 'pending')."""
    rows = con.execute("""select s.reason, s.suggestion, s.confidence, coalesce(t.defect, 'none')
                          from cln_suggestions s left join truth.spectra t using (obsid)""").fetchall()
    reason = np.array([r[0] for r in rows], dtype=object)
    sugg = np.array([r[1] for r in rows], dtype=object)
    conf = np.array([np.nan if r[2] is None else r[2] for r in rows], dtype=float)
    defect = np.array([r[3] for r in rows], dtype=object)
    bad, good = np.isin(defect, CAUGHT), defect == CLEAN
    judged = bad | good
    min_conf = float(cfg.clean.suggestion_min_confidence)
    out: dict = {"min_confidence": min_conf, "n_spectra": len(rows), "n_without": int((sugg == None).sum()),  # noqa: E711
                 "rows": []}
    for cut, sel in (("all", np.ones(len(rows), bool)), (f">= {min_conf:g}", conf >= min_conf)):
        for why in ("all", "single_sample", "no_cluster"):
            m = judged & (reason == why if why != "all" else True)
            kp, kr, kn, kt = _rates((sugg == "keep") & sel & m, good & m)
            rp, rr, rn, rt = _rates((sugg == "reject") & sel & m, bad & m)
            out["rows"].append({"cut": cut, "reason": why, "keep_precision": kp, "keep_recall": kr, "n_keep": kn,
                                "n_clean": kt, "reject_precision": rp, "reject_recall": rr, "n_reject": rn,
                                "n_defective": rt})
    q = con.execute("select count(*), coalesce(sum(n_spectra), 0) from cln_inspection_queue "
                    "where status = 'pending'").fetchone()
    out["manual_bins"], out["manual_spectra"] = int(q[0]), int(q[1])
    out["queued_bins"] = int(con.execute("select count(*) from cln_inspection_queue").fetchone()[0])
    return out


def combined_figures(con, obsid: np.ndarray, is_bad: np.ndarray, is_clean: np.ndarray, eligible: np.ndarray,
                     capped: np.ndarray) -> dict:
    """DBSCAN + suggestions + NN together (issue 11's targets), over the spectra of cln_dbscan: a spectrum
    is *accepted* when it reaches cln_nn_kept, or when DBSCAN accepted it but the cap left it out
    (``capped``: never judged by the NN, counted as accepted: the conservative side for recall)."""
    golden = {r[0] for r in con.execute("select obsid from cln_nn_kept").fetchall()}
    in_golden = np.isin(obsid, list(golden))
    acc = in_golden | capped
    nn = con.execute("""select k.obsid, coalesce(t.defect, 'none'), p.obsid is not null
                        from cln_kept k left join truth.spectra t using (obsid)
                        left join (select distinct obsid from cln_nn_predictions where removed) p using (obsid)
                        """).fetchall()
    nd = np.array([r[1] for r in nn], dtype=object)
    removed = np.array([bool(r[2]) for r in nn], dtype=bool)
    nbad, nclean = np.isin(nd, CAUGHT), nd == CLEAN

    def frac(num, den):
        return float(num.sum() / den.sum()) if den.sum() else float("nan")

    return {
        "defect_recall": frac(is_bad & ~acc, is_bad), "n_defective": int(is_bad.sum()),
        "kept_fraction_eligible": frac(eligible & acc, eligible), "n_eligible_clean": int(eligible.sum()),
        "n_golden": int(in_golden.sum()), "golden_defective": int((in_golden & is_bad).sum()),
        "golden_defective_fraction": frac(in_golden & is_bad, in_golden),
        "nn_n_defective_in": int(nbad.sum()), "nn_recall": frac(nbad & removed, nbad),
        "nn_clean_removed": int((nclean & removed).sum()), "nn_clean_in": int(nclean.sum()),
        "nn_clean_removed_fraction": frac(nclean & removed, nclean),
    }


# the truth of each clustered spectrum, read apart from the spectra: joined to the arrays (and sorted
# with them) it needs more than duckdb.memory_limit_gb at paper scale
PAIR_TRUTH_SQL = """
select b.obsid, coalesce(t.defect, 'none') as defect, st.teff_k, st.logg_dex, st.mh_dex
from cln_bins b
left join truth.spectra t using (obsid)
left join truth.stars st on st.star_id = t.flux_of_star_id
"""


def _pair_figures(con, cfg: Config) -> dict:
    """Noise-free ceiling (obsids accepted) and the noise sd of D^2 of clean same-bin pairs."""
    from mgold.udfs.dbscan import dbscan_precomputed
    from mgold.udfs.spectral_distance import noise_sd, weighted_distances

    from ..synth.spectra_model import intrinsic_flux

    eps = float(cfg.clean.dbscan_eps)
    accepted: set[int] = set()
    sd, sd_snr = [], []
    truth = {r[0]: r[1:] for r in con.execute(PAIR_TRUTH_SQL).fetchall()}
    reader = con.sql(SOURCE_SQL).to_arrow_reader(cfg.spectra.batch_spectra)   # the clean stage's own input
    for rows, flux, ivar in iter_bin_chunks(reader, cfg.spectra.batch_spectra):
        t = [truth[o] for o in rows["obsid"]]
        F, IV = np.stack(flux).astype(float), np.stack(ivar).astype(float)
        loglam = rows["loglam0"][0] + rows["dloglam"][0] * np.arange(F.shape[1])
        params = distance_params(cfg, F.shape[1], loglam)
        b = np.asarray(rows["bin_id"], dtype=object)
        rv = np.array([np.nan if v is None else v for v in rows["rv_kms"]], dtype=float)
        clean = np.array([d == CLEAN and teff is not None for d, teff, _, _ in t])
        lab = np.array([[np.nan if v is None else v for v in row[1:]] for row in t], dtype=float).reshape(-1, 3)
        snr = np.asarray(rows["snr_i"], dtype=float)
        for bid in dict.fromkeys(b):
            idx = np.flatnonzero(b == bid)
            y, iv = prepare_bin(F[idx], IV[idx], cfg, loglam, rv[idx])
            c = np.flatnonzero(clean[idx])
            if c.size == 0:
                continue
            if c.size >= 2:
                S = noise_sd(y[c], iv[c], *params)
                iu = np.triu_indices(c.size, 1)
                sd.append(S[iu])
                sd_snr.append(np.minimum(snr[idx][c][iu[0]], snr[idx][c][iu[1]]))
            nf = intrinsic_flux(lab[idx[c], 0], lab[idx[c], 1], lab[idx[c], 2], 10 ** loglam)
            yn, _ = prepare_bin(nf, IV[idx[c]], cfg, loglam, rv[idx[c]])
            labels = dbscan_precomputed(weighted_distances(yn, iv[c], *params), eps, int(min_pts(idx.size, cfg)))
            if (labels >= 0).any():
                main = np.bincount(labels[labels >= 0]).argmax()
                accepted.update(int(rows["obsid"][i]) for i in idx[c][labels == main])
    sd, sd_snr = (np.concatenate(v).astype(float) if v else np.empty(0) for v in (sd, sd_snr))
    fin = np.isfinite(sd)

    def med(m):
        return float(np.median(sd[m & fin])) if (m & fin).any() else float("nan")

    return {"ceiling_obsids": accepted, "n_clean_pairs": int(sd.size),
            "noise_sd_d2": (med(np.ones(sd.size, bool)),
                            float(np.percentile(sd[fin], 90)) if fin.any() else float("nan")),
            "noise_sd_d2_by_snr": {f"{lo:g}-{hi:g}": med((sd_snr >= lo) & (sd_snr < hi))
                                   for lo, hi in SNR_CLASSES}}


def rv_residuals(con) -> dict:
    res = con.execute("""
        select s.rv_kms - t.rv_true_kms, coalesce(t.defect, 'none')
        from spc_cluster_grid s join truth.spectra t using (obsid)""").fetchall()
    r = np.array([x[0] for x in res if x[1] != "wrong_rv" and x[0] is not None], dtype=float)
    w = np.array([x[0] for x in res if x[1] == "wrong_rv" and x[0] is not None], dtype=float)
    if r.size == 0:
        return {"rv_n": 0}
    med = float(np.median(r))
    return {"rv_n": int(r.size), "rv_residual_median_kms": med,
            "rv_residual_robust_sigma_kms": float(1.4826 * np.median(np.abs(r - med))),
            "rv_residual_p99_abs_kms": float(np.percentile(np.abs(r), 99)),
            "rv_wrong_n": int(w.size),
            "rv_wrong_median_abs_kms": float(np.median(np.abs(w))) if w.size else float("nan")}


def rest_frame_residuals(con, cfg: Config = DEFAULT, max_ccf: int = 2000, max_lag_px: int = 6) -> dict:
    """Measured leftover shift of the rest-frame spectra vs the truth's prediction (km/s)."""
    from scipy.ndimage import uniform_filter1d

    from ..stages.spectra import SED_FAMILY, SEDS_SQL, ModelSeds, grid
    from mgold.udfs.grid import C_KMS

    cl = grid(cfg, "cluster")
    # the obsids first, then only their spectra: a top-N carrying the arrays would sort them all
    rows = con.execute(f"""
        with pick as (
            select s.obsid from spc_cluster_grid s join lbl_labelled_sample b using (obsid)
            join truth.spectra t using (obsid)
            where t.defect = 'none' order by s.obsid limit {int(max_ccf)})
        select s.obsid, s.class, b.teff_k, b.logg_dex, b.mh_dex, s.rv_kms, t.rv_true_kms, s.flux, s.ivar
        from pick join spc_cluster_grid s using (obsid) join lbl_labelled_sample b using (obsid)
        join truth.spectra t using (obsid) order by s.obsid""").fetchall()
    if not rows:
        return {"ccf_n": 0}
    seds = ModelSeds(con.sql(SEDS_SQL).to_arrow_table(), cl)
    fam = np.array([SED_FAMILY.get(r[1], "bt_settl_like") for r in rows])
    node = seds.nearest(fam, np.array([[r[2], r[3], r[4]] for r in rows], dtype=float))
    px_kms = C_KMS * np.log(10) * cl[1]
    meas, want = [], []
    for r, k in zip(rows, node):
        f, iv = np.asarray(r[7], float), np.asarray(r[8], float)
        m = seds.on_grid(int(k)).astype(float)
        good = (iv > 0) & (m > 0)
        if good.sum() < 0.5 * f.size:
            continue
        hp = [np.where(good, v / np.maximum(uniform_filter1d(np.where(good, v, np.median(v[good])), 51), 1e-30) - 1, 0)
              for v in (f, m)]
        lags = np.arange(-max_lag_px, max_lag_px + 1)
        cc = np.array([np.dot(np.roll(hp[1], L), hp[0]) for L in lags])
        i = int(np.argmax(cc))
        if 0 < i < len(lags) - 1:
            den = cc[i - 1] - 2 * cc[i] + cc[i + 1]
            lag = lags[i] + (0.5 * (cc[i - 1] - cc[i + 1]) / den if den != 0 else 0.0)
            meas.append(lag * px_kms)
            want.append(r[6] - r[5])
    if not meas:
        return {"ccf_n": 0}
    diff = np.array(meas) - np.array(want)
    med = float(np.median(diff))
    return {"ccf_n": len(meas), "ccf_residual_median_kms": float(np.median(meas)),
            "ccf_minus_truth_median_kms": med,
            "ccf_minus_truth_robust_sigma_kms": float(1.4826 * np.median(np.abs(diff - med)))}


def format_suggestions(s: dict) -> list[str]:
    """Lines of the suggestions-vs-truth table (``suggestion_figures``)."""
    out = [f"suggestions vs truth ({s['n_spectra']} queued spectra, {s['n_without']} without a suggestion): "
           "keep = clean, reject = defective; precision / recall (n)",
           f"  {'cut':<8s} {'reason':<14s} {'keep':>24s} {'reject':>24s}"]
    for r in s["rows"]:
        out.append(f"  {r['cut']:<8s} {r['reason']:<14s} {r['keep_precision']:>7.3f} / {r['keep_recall']:.3f} "
                   f"({r['n_keep']:>4d} of {r['n_clean']:>4d}) {r['reject_precision']:>7.3f} / {r['reject_recall']:.3f} "
                   f"({r['n_reject']:>4d} of {r['n_defective']:>4d})")
    out.append(f"  manual queue left: {s['manual_bins']} of {s['queued_bins']} bins ({s['manual_spectra']} spectra) "
               f"pending after the suggestions of confidence >= {s['min_confidence']:g}")
    return out


def format_report(m: dict) -> str:
    """The figures as short lines, for `mgold report clean`."""
    lines = [
        f"cleaning accuracy vs synthetic truth: {m['n_spectra']} spectra in {m['n_bins']} bins",
        f"  defect recall (not accepted)      {m['defect_recall']:.3f}  of {m['n_defective']} defective spectra",
        f"    in bins DBSCAN clustered        {m['defect_recall_clustered_bins']:.3f}  "
        f"of {m['n_defective_clustered_bins']}",
    ]
    for d in CAUGHT:
        lines.append(f"    {d:<30s} {m['recall_by_defect'][d]:.3f}  of {m['n_by_defect'][d]}")
    lines += [
        f"  clean eligible spectra accepted   {m['kept_fraction_eligible']:.3f}  of {m['n_eligible_clean']}"
        f"  (eps {m['eps']:g})",
        f"    noise-free ceiling at this eps  {m['kept_fraction_noise_free_ceiling']:.3f}",
        f"    label-accurate ones (within a bin of truth) {m['kept_fraction_label_accurate']:.3f}  of "
        f"{m['n_eligible_label_accurate']}; the others {m['kept_fraction_label_inaccurate']:.3f}",
        "    by S/N_i: " + ", ".join(f"{k} {v[0]:.2f} (ceiling {v[1]:.2f}) of {v[2]}"
                                     for k, v in m["kept_fraction_by_snr"].items() if v[2]),
        f"  noise sd of D^2, clean same-bin pairs: median {m['clean_pair_noise_sd_d2'][0]:.2f}, "
        f"q90 {m['clean_pair_noise_sd_d2'][1]:.2f} over {m['n_clean_pairs']}; by pair min S/N_i: "
        + ", ".join(f"{k} {v:.2f}" for k, v in m["clean_pair_noise_sd_d2_by_snr"].items() if v == v),
        f"  accepted that are not defective   {m['accepted_purity']:.3f}",
        f"  cln_kept rows {m['n_kept']}, defective among them {m['kept_defective_fraction']:.3f}",
    ]
    if m.get("suggestions"):
        lines += format_suggestions(m["suggestions"])
    if m.get("combined"):
        c = m["combined"]
        lines += [
            "DBSCAN + suggestions + NN together (targets: recall >= 0.95, < 0.3% defective golden, >= 0.8 kept)",
            f"  defect recall (not accepted)      {c['defect_recall']:.3f}  of {c['n_defective']} defective spectra",
            f"  clean eligible spectra accepted   {c['kept_fraction_eligible']:.3f}  of {c['n_eligible_clean']}",
            f"  golden (cln_nn_kept) {c['n_golden']}, truly defective {c['golden_defective']} "
            f"({c['golden_defective_fraction']:.2%})",
            f"  NN step: removed {c['nn_recall']:.3f} of the {c['nn_n_defective_in']} defective spectra that reached "
            f"it, and {c['nn_clean_removed']} of {c['nn_clean_in']} clean ones ({c['nn_clean_removed_fraction']:.1%})",
        ]
    if m.get("rv_n"):
        lines.append(f"  RV used - true RV (km/s): median {m['rv_residual_median_kms']:+.2f}, robust sigma "
                     f"{m['rv_residual_robust_sigma_kms']:.2f}, p99 |res| {m['rv_residual_p99_abs_kms']:.2f} "
                     f"over {m['rv_n']}; wrong-RV defects median |res| {m['rv_wrong_median_abs_kms']:.0f} "
                     f"over {m['rv_wrong_n']}")
    if m.get("ccf_n"):
        lines.append(f"  rest-frame spectra vs model SED (CCF): leftover shift median {m['ccf_residual_median_kms']:+.2f} "
                     f"km/s; minus truth's prediction: median {m['ccf_minus_truth_median_kms']:+.2f}, robust sigma "
                     f"{m['ccf_minus_truth_robust_sigma_kms']:.2f} km/s over {m['ccf_n']}")
    return "\n".join(lines)
