"""Ground truth of a synthetic universe: written beside its files, loaded into ``truth.*``.

Tables: ``stars`` (true labels, class, binary/variable flags, distance, A_V, ...),
``spectra`` (obsid -> star, injected defect, true and reported RV, S/N, whose labels /
flux the catalogues and spectrum really carry), ``injected_offsets`` (catalog, class,
param, offset_value) and ``label_rows`` (which star each label-catalogue row really
describes, and whether it is an outlier). No pipeline model may read them; only
evaluation code does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mgold.pipeline.synth import catalogs as cat
from mgold.pipeline.synth.writers import to_arrow, write_parquet


def write_truth(out: Path, s, stars: dict, visits: dict, label_truth: list[dict], catalogs) -> list[str]:
    """Write ``out/truth/*.parquet``; returns their paths relative to ``out``."""
    star_cols = ("star_id", "source_id", "class", "teff_k", "logg_dex", "mh_dex", "is_binary", "is_variable",
                 "var_type", "dist_pc", "av_mag", "ra_deg", "dec_deg", "pmra_masyr", "pmdec_masyr",
                 "abs_g_mag", "bp_rp0_mag", "g_mag", "rv_true_kms", "n_visits", "dr11_only")
    spec = {"obsid": visits["obsid"], "star_id": visits["star_id"], "defect": visits["defect"],
            "labels_of_star_id": visits["labels_of_star_id"], "flux_of_star_id": visits["flux_of_star_id"],
            "rv_true_kms": visits["rv_true_kms"], "rv_reported_kms": visits["rv_kms"],
            "snr_i_target": visits["snr_i_target"], "snr_i": visits["header_snr"]["i"], "lmjd": visits["lmjd"]}
    labels = {k: np.concatenate([np.asarray(t[k]) if k != "catalog" else np.full(len(t["star_id"]), t[k])
                                 for t in label_truth]) for k in ("catalog", "row_key", "star_id", "is_outlier")}
    tables = {"stars": {k: stars[k] for k in star_cols}, "spectra": spec,
              "injected_offsets": cat.injected_offsets(s, catalogs), "label_rows": labels}
    rels = []
    for name, cols in tables.items():
        rel = f"truth/{name}.parquet"
        write_parquet(to_arrow(cols), out / rel)
        rels.append(rel)
    return rels


def load_truth(con, out_dir: Path) -> None:
    """Create ``truth.<name>`` tables from ``out_dir/truth/*.parquet`` (evaluation only)."""
    out_dir = Path(out_dir)
    manifest = json.loads((out_dir / "manifest.json").read_text())
    con.execute("create schema if not exists truth")
    for rel in manifest["truth"]:
        path = (out_dir / rel).resolve()
        if not path.exists():
            raise FileNotFoundError(f"{path}: truth file listed in manifest.json is missing")
        con.execute(f"create or replace table truth.{path.stem} as select * from read_parquet(?)",
                    [str(path)])
