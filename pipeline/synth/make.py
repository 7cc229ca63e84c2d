"""``make``: write a whole synthetic universe to a folder (``truth.load_truth`` loads its truth).

Layout of ``out``::

    manifest.json        preset, seed, format, generator hash, flat synth config, files [{kind, path}],
                         truth [paths]
    lamost/              spectra: Parquet batches in the landing layout (header columns + ingest's
                         spectra columns and encodings), or one DR9+/DR13 FITS file per spectrum
    catalogs/            one file per catalogue kind (FITS, CSV or Parquet, like the real ones)
    truth/*.parquet      stars, spectra, injected_offsets, label_rows: evaluation only

Spectra are generated and written in batches of ``synth.spectra_per_file`` (bounded
memory), each batch from its own seeded stream, so outputs are byte-identical for a
seed and preset.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from mgold.pipeline.config import Config
from mgold.pipeline.progress import progress
from mgold.pipeline.synth import catalogs as cat
from mgold.pipeline.synth.observe import C_KMS, DATA_V, RV_FAILED, Observer, make_visits
from mgold.pipeline.synth.stars import make_stars, stream
from mgold.pipeline.synth.truth import load_truth, write_truth  # noqa: F401  (load_truth re-exported)
from mgold.pipeline.synth.writers import (spectra_table, spectrum_fits_name, to_arrow, write_csv,
                                          write_fits_table, write_parquet, write_spectra_parquet,
                                          write_spectrum_fits)

FORMATS = ("parquet", "fits")
# catalogue kind -> (file name, writer): formats like the real releases
CATALOG_FILES = {
    "gaia": "gaia_edr3_source.fits", "bailer_jones": "bailer_jones_edr3_distances.csv",
    "dust": "green2018_dust_av.csv", "starhorse": "starhorse_edr3.parquet",
    "aspcap": "allStar-dr17-synspec_rev1.fits", "qiu23": "qiu23_mgiants.csv",
    "ding22": "ding22_mdwarfs.csv", "laspm": "laspm_dr9_mtype.parquet",
    "variables": "variable_stars.csv", "lamost_catalog": "lamost_dr11_lrs_mstars.csv",
    "model_sed_grid": "model_sed_grid.parquet",
}


def _write_catalog(out: Path, kind: str, cols: dict) -> dict:
    rel = f"catalogs/{CATALOG_FILES.get(kind, kind + '.csv')}"
    path = out / rel
    if rel.endswith(".fits"):
        write_fits_table(cols, path)
    elif rel.endswith(".csv"):
        write_csv(to_arrow(cols), path)
    else:
        write_parquet(to_arrow(cols), path)
    return {"kind": kind, "path": rel}


def _spectrum_header(v: dict, idx: np.ndarray, snr: dict) -> dict:
    n = idx.size
    h = {k: v[k][idx] for k in ("obsid", "designation", "ra_deg", "dec_deg", "subclass", "lmjd", "mjd",
                                "planid", "spid", "fiberid")}
    h["class"] = np.full(n, "STAR")
    failed = v["rv_failed"][idx]     # a failed RV fit: Z = Z_ERR = rv = -9999, as LAMOST writes it
    h["z"] = np.where(failed, RV_FAILED, np.round(v["rv_kms"][idx] / C_KMS, 8))
    # FITS files carry only Z: keep both layouts consistent
    h["rv_kms"] = np.where(failed, RV_FAILED, h["z"] * C_KMS)
    h["z_err"] = np.where(failed, RV_FAILED, np.round(v["rv_err_kms"][idx] / C_KMS, 8))
    h.update({f"snr_{b}": snr[b] for b in ("u", "g", "r", "i", "z")})
    h["data_v"] = np.full(n, DATA_V)
    return h


def write_spectra(cfg: Config, out: Path, fmt: str, stars: dict, visits: dict) -> list[dict]:
    """Generate and write every spectrum in batches; fills ``visits['header_snr']``."""
    s = cfg.synth
    obs = Observer(s)
    n = visits["obsid"].size
    per = max(int(s.spectra_per_file), 1)
    snr_all = {b: np.zeros(n) for b in ("u", "g", "r", "i", "z")}
    files = []
    # write batch b on a thread (pyarrow releases the GIL) while batch b + 1 is generated
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = None
        for b, start in enumerate(progress(range(0, n, per), total=-(-n // per), desc="spectra", unit="batches")):
            idx = np.arange(start, min(start + per, n))
            res = obs.observe(stars, visits, idx, stream(s, "spectra", b))
            for k in snr_all:
                snr_all[k][idx] = res["snr"][k]
            header = _spectrum_header(visits, idx, res["snr"])
            if pending is not None:
                pending.result()
            if fmt == "parquet":
                rel = f"lamost/spectra-{b:05d}.parquet"
                table = spectra_table(header, res["flux"], res["ivar"], res["pixmask"])
                pending = pool.submit(write_spectra_parquet, table, out / rel, cfg.ingest.spectra_per_row_group,
                                      s.spectra_compression)
                files.append({"kind": "lamost", "path": rel})
            else:
                for r in range(idx.size):
                    h = {k: val[r] for k, val in header.items()}
                    rel = f"lamost/{h['lmjd']}/" + spectrum_fits_name(h["lmjd"], h["planid"], h["spid"], h["fiberid"])
                    write_spectrum_fits(out / rel, h, res["flux"][r], res["ivar"][r], res["pixmask"][r])
                    files.append({"kind": "lamost", "path": rel})
        if pending is not None:
            pending.result()
    visits["header_snr"] = snr_all
    return files


def generator_version(folder: Path | None = None) -> str:
    """sha256 of the generator's own files (code + fitted coefficients; ``folder``: this package's
    by default): a changed generator makes an existing universe stale, like a changed
    ``synth.*`` value does."""
    h = hashlib.sha256()
    here = Path(folder) if folder is not None else Path(__file__).resolve().parent
    for path in sorted(p for p in here.iterdir() if p.suffix in (".py", ".json", ".npz")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def make(cfg: Config, out: Path, fmt: str = "parquet") -> Path:
    """Write the universe of ``cfg.synth`` to ``out`` in ``fmt``; returns the manifest path.

    Atomic: the universe is written into a sibling temporary folder and swapped in by renames
    only when complete, so an interrupted make never leaves a folder that mixes two universes
    (an older one stays as it was, or ``out`` is absent and the next make starts over)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown spectra format {fmt!r}; choices: {', '.join(FORMATS)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for stray in out.parent.glob(f".{out.name}.*-*"):      # left by an interrupted make
        shutil.rmtree(stray, ignore_errors=True)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        _write_universe(cfg, tmp, fmt)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
    return out / "manifest.json"


def _write_universe(cfg: Config, out: Path, fmt: str) -> None:
    out.mkdir(parents=True)
    s = cfg.synth
    stars = make_stars(s)
    visits = make_visits(s, stars)
    files = write_spectra(cfg, out, fmt, stars, visits)

    label_truth = []
    aspcap, t = cat.aspcap_table(s, stars)
    label_truth.append(t)
    tables = {"gaia": cat.gaia_table(stars), "bailer_jones": cat.bailer_jones_table(s, stars),
              "dust": cat.dust_table(s, stars), "starhorse": cat.starhorse_table(s, stars), "aspcap": aspcap}
    for c in cat.synthesised(s, cfg.labels.catalogs):
        if c.keyed_by == "obsid":
            tables[c.key], t = cat.obsid_label_table(s, c.key, c.classes, stars, visits)
            label_truth.append(t)
    tables["variables"] = cat.variables_table(s, stars)
    tables["lamost_catalog"] = cat.lamost_catalog_table(s, stars, visits)
    tables["model_sed_grid"] = cat.model_sed_grid_table()
    files += [_write_catalog(out, kind, cols) for kind, cols in tables.items()]

    truth = write_truth(out, s, stars, visits, label_truth, cfg.labels.catalogs)
    for f in files:
        f["bytes"] = (out / f["path"]).stat().st_size
    manifest = {"preset": s.preset, "seed": s.seed, "format": fmt, "generator": generator_version(),
                "config": {k: v for k, v in cfg.flat().items() if k.startswith("synth.")},
                "files": files, "truth": truth}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def manifest_complete(out: Path, pruned_ok: set[str] = frozenset()) -> str | None:
    """None when every file the manifest lists is present with its recorded size, else why not;
    a file in ``pruned_ok`` (ingested, then removed with --no-keep-inputs) may be absent."""
    m = json.loads((Path(out) / "manifest.json").read_text())
    for f in m["files"] + [{"path": t} for t in m.get("truth", [])]:
        p = Path(out) / f["path"]
        if not p.is_file() and str(p) in pruned_ok:
            continue
        if not p.is_file():
            return f"{p} is missing"
        if "bytes" in f and p.stat().st_size != f["bytes"]:
            return f"{p} has {p.stat().st_size} bytes, the manifest says {f['bytes']}"
    return None
