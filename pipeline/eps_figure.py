"""Paper Fig. 6 on the synthetic universe: one populated bin clustered at two eps values.

The clustering is the stage's own (``cluster_chunk``: the noise-debiased distance of
pipeline/stages/clean.py, with the config the clean layer was built with); the
curves are the spectra over their median, as the inspection plots show them.

Run: ``python -m mgold.pipeline.eps_figure -w W.duckdb --out fig6.png``
(or ``mgold inspect figure``). Reads models only (no truth), so it works on real
data too.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .config import DEFAULT, Config
from .inspect import InspectError, bin_spectra, draw_bin, normalised
from .runner import bind_config, compile_model_sql, load_models, recorded_config
from .stages.clean import cluster_chunk


def kept_flags(clustered, cfg: Config) -> np.ndarray:
    """``is_kept`` of cln_dbscan rows, by the cln_keep_rank model itself (run on a scratch
    in-memory database): the cap rule is written once, in SQL."""
    import duckdb

    scratch = duckdb.connect()
    try:
        bind_config(scratch, cfg)
        scratch.register("cln_dbscan", clustered)
        sql = compile_model_sql(load_models()["cln_keep_rank"])
        got = dict(scratch.execute(f"select obsid, is_kept from ({sql})").fetchall())
    finally:
        scratch.close()
    return np.array([got[o] for o in clustered["obsid"].to_pylist()])


def most_populated_bin(con) -> str:
    row = con.execute("select bin_id from cln_bins group by bin_id order by count(*) desc, bin_id limit 1").fetchone()
    if row is None:
        raise InspectError("cln_bins is empty: build the clean layer first")
    return row[0]


def eps_figure(con, out: Path, cfg: Config = DEFAULT, bin_id: str | None = None) -> tuple[Path, str]:
    """Write the two-panel PNG; return its path and a one-paragraph summary."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bin_id = bin_id or most_populated_bin(con)
    rows, loglam, flux, ivar = bin_spectra(con, bin_id)
    chunk = {"bin_id": [bin_id] * len(rows), "obsid": [r["obsid"] for r in rows],
             "source_id": [0] * len(rows), "snr_i": [r["snr_i"] for r in rows],
             "snr_rank": list(range(1, len(rows) + 1)), "rv_kms": [r["rv_kms"] for r in rows],
             "loglam0": [r["loglam0"] for r in rows],
             "dloglam": [r["dloglam"] for r in rows]}
    y = normalised(flux, ivar)
    fig, axes = plt.subplots(2, 1, figsize=(10, 8), sharex=True)
    lines = [f"bin {bin_id}: {len(rows)} spectra"]
    for ax, eps in zip(axes, (cfg.clean.dbscan_eps, cfg.clean.figure_eps_alt)):
        table = cluster_chunk(chunk, list(flux), list(ivar), cfg, eps=eps)
        res = table.to_pydict()
        member = np.array(res["in_main_cluster"])
        kept = kept_flags(table, cfg)
        draw_bin(ax, loglam, y, member, kept, f"eps = {eps:g}: {member.sum()} of {len(rows)} spectra in the "
                                               f"main cluster (minPts {res['min_pts'][0]})")
        nn = np.array(res["nn_dist"], dtype=float)
        lines.append(f"  eps {eps:g}: main cluster {member.sum()}, clusters {res['n_clusters'][0]}, "
                     f"median nearest-neighbour distance {np.nanmedian(nn):.2f}")
    axes[0].set_xlabel("")
    r0 = rows[0]
    fig.suptitle(f"{bin_id}: Teff {r0['teff_lo_k']:.0f} to {r0['teff_lo_k'] + cfg.clean.bin_teff_k:.0f} K, log g "
                 f"{r0['logg_lo_dex']:.2f} to {r0['logg_lo_dex'] + cfg.clean.bin_logg_dex:.2f}, [M/H] "
                 f"{r0['mh_lo_dex']:.2f} to {r0['mh_lo_dex'] + cfg.clean.bin_mh_dex:.2f}\n"
                 "gray: all spectra of the bin, red: its main DBSCAN cluster (noise-debiased distance, "
                 "pipeline/stages/clean.py)", fontsize=9)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out, "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from .warehouse import open_warehouse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-w", "--warehouse", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("eps_figure.png"))
    p.add_argument("--bin", default=None)
    a = p.parse_args(argv)
    with open_warehouse(a.warehouse, read_only=True) as con:
        path, summary = eps_figure(con, a.out, recorded_config(con, 'cln_dbscan'), a.bin)
    print(summary)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
