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
- *RV residual*: LAMOST 1D-pipeline RV used for the rest frame minus the true RV,
  in km/s, over the processed spectra without a wrong-RV defect (median, robust
  sigma = 1.4826 MAD, 99th percentile of |residual|).
"""

from __future__ import annotations

import numpy as np

CAUGHT = ("wrong_object", "broken_segment", "swapped_labels", "wrong_rv")
CLEAN = "none"


def evaluate(con) -> dict:
    """Every figure of the report, as a dict (reads truth.spectra; models never do)."""
    rows = con.execute("""
        select d.bin_id, d.obsid, d.min_pts, d.in_main_cluster, d.is_kept, d.n_clusters,
               coalesce(t.defect, 'none') as defect
        from cln_dbscan d left join truth.spectra t using (obsid)""").fetchall()
    if not rows:
        raise ValueError("cln_dbscan is empty: nothing to evaluate (build the clean layer first)")
    bins = np.array([r[0] for r in rows], dtype=object)
    min_pts = np.array([r[2] for r in rows])
    accepted = np.array([bool(r[3]) for r in rows])
    clustered_bin = np.array([r[5] > 0 for r in rows])
    defect = np.array([r[6] for r in rows], dtype=object)
    is_bad = np.isin(defect, CAUGHT)
    is_clean = defect == CLEAN
    n_clean_in_bin = {b: 0 for b in set(bins)}
    for b, c in zip(bins, is_clean):
        n_clean_in_bin[b] += int(c)
    eligible = is_clean & np.array([n_clean_in_bin[b] >= m for b, m in zip(bins, min_pts)])

    def frac(num, den):
        return float(num.sum() / den.sum()) if den.sum() else float("nan")

    out = {
        "n_spectra": len(rows),
        "n_bins": len(n_clean_in_bin),
        "n_defective": int(is_bad.sum()),
        "defect_recall": frac(is_bad & ~accepted, is_bad),
        "defect_recall_clustered_bins": frac(is_bad & clustered_bin & ~accepted, is_bad & clustered_bin),
        "n_defective_clustered_bins": int((is_bad & clustered_bin).sum()),
        "recall_by_defect": {d: frac((defect == d) & ~accepted, defect == d) for d in CAUGHT},
        "n_by_defect": {d: int((defect == d).sum()) for d in CAUGHT},
        "n_eligible_clean": int(eligible.sum()),
        "kept_fraction_eligible": frac(eligible & accepted, eligible),
        "accepted_purity": frac(accepted & ~is_bad, accepted),
    }
    kept = con.execute("""select coalesce(t.defect, 'none') from cln_kept k
                          left join truth.spectra t using (obsid)""").fetchall()
    kd = np.array([r[0] for r in kept], dtype=object)
    out["n_kept"] = len(kd)
    out["kept_defective_fraction"] = float(np.isin(kd, CAUGHT).mean()) if len(kd) else float("nan")
    out.update(rv_residuals(con))
    return out


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
        f"  clean eligible spectra accepted   {m['kept_fraction_eligible']:.3f}  of {m['n_eligible_clean']}",
        f"  accepted that are not defective   {m['accepted_purity']:.3f}",
        f"  cln_kept rows {m['n_kept']}, defective among them {m['kept_defective_fraction']:.3f}",
    ]
    if m.get("rv_n"):
        lines.append(f"  RV used - true RV (km/s): median {m['rv_residual_median_kms']:+.2f}, robust sigma "
                     f"{m['rv_residual_robust_sigma_kms']:.2f}, p99 |res| {m['rv_residual_p99_abs_kms']:.2f} "
                     f"over {m['rv_n']}; wrong-RV defects median |res| {m['rv_wrong_median_abs_kms']:.0f} "
                     f"over {m['rv_wrong_n']}")
    return "\n".join(lines)
