"""Isochrone relations of the synthetic universe, fitted to PARSEC v1.2S tables.

The committed ``isochrone_coeffs.json`` holds least-squares coefficients of
``logg(Teff, [M/H])`` along the giant branch and ``M_G`` / ``BP-RP`` versus
``(Teff, [M/H])`` for dwarfs (main sequence, label 1) and giants (RGB + AGB,
labels 3, 7, 8) of the 5 Gyr PARSEC isochrones at [M/H] = -0.5 ... +0.5. The
tables themselves are never committed; regenerate the coefficients with

    python -m mgold.pipeline.synth.isochrones ../shared/data/real/isochrones
"""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

COEFFS_PATH = Path(__file__).with_name("isochrone_coeffs.json")
TEFF_PIVOT_K = 3500.0
TEFF_SCALE_K = 500.0
TEFF_RANGE_K = (2700.0, 4400.0)       # fit window, a little wider than the M-star range
GIANT_LABELS = (3, 7, 8)              # PARSEC: RGB, early AGB, TP-AGB
DWARF_LABELS = (1,)                   # PARSEC: main sequence
GIANT_LOGG_MAX_DEX = 3.0
# (relation, class) -> column of the PARSEC table
RELATIONS = {("logg", "giant"): "logg", ("logg", "dwarf"): "logg",
             ("abs_g", "giant"): "Gmag", ("abs_g", "dwarf"): "Gmag",
             ("bp_rp", "giant"): "bp_rp", ("bp_rp", "dwarf"): "bp_rp"}


def design(teff_k: np.ndarray, mh_dex: np.ndarray) -> np.ndarray:
    """Basis [1, x, x^2, x^3, m, m x, m^2] with x = (Teff - 3500 K) / 500 K, m = [M/H]."""
    x, m = np.broadcast_arrays((np.asarray(teff_k, float) - TEFF_PIVOT_K) / TEFF_SCALE_K,
                               np.asarray(mh_dex, float))
    return np.stack([np.ones_like(x), x, x * x, x ** 3, m, m * x, m * m], axis=-1)


def _read_table(path: Path) -> dict[str, np.ndarray]:
    arr = np.genfromtxt(path, names=True)
    if arr.dtype.names is None or "logTe" not in arr.dtype.names:
        raise ValueError(f"{path}: not a PARSEC isochrone table (no logTe column)")
    mh = float(path.name.split("MH")[0])     # file names like -0.25MH_5Gyr.dat
    cols = {n: np.asarray(arr[n], float) for n in ("logTe", "logg", "label", "Gmag", "G_BPmag", "G_RPmag")}
    cols["bp_rp"] = cols["G_BPmag"] - cols["G_RPmag"]
    cols["mh"] = np.full(len(arr), mh)
    return cols


def derive_coeffs(iso_dir: Path) -> dict:
    """Fit every relation of RELATIONS to the PARSEC tables under ``iso_dir``."""
    files = sorted(Path(iso_dir).rglob("dr1_passbands/*MH_5Gyr.dat"))
    if not files:
        raise FileNotFoundError(f"{iso_dir}: no PARSEC dr1_passbands/*MH_5Gyr.dat tables found")
    tabs = [_read_table(f) for f in files]
    t = {k: np.concatenate([tb[k] for tb in tabs]) for k in tabs[0]}
    teff = 10 ** t["logTe"]
    in_range = (teff >= TEFF_RANGE_K[0]) & (teff <= TEFF_RANGE_K[1])
    sel = {"dwarf": in_range & np.isin(t["label"], DWARF_LABELS),
           "giant": in_range & np.isin(t["label"], GIANT_LABELS) & (t["logg"] < GIANT_LOGG_MAX_DEX)}
    out: dict = {"basis": "1, x, x^2, x^3, m, m*x, m^2; x=(teff_k-3500)/500, m=mh_dex",
                 "source": "PARSEC v1.2S + COLIBRI, 5 Gyr, Gaia DR2 passbands, labels "
                           f"dwarf={list(DWARF_LABELS)} giant={list(GIANT_LABELS)}",
                 "relations": {}}
    for (rel, cls), col in sorted(RELATIONS.items()):
        m = sel[cls]
        a = design(teff[m], t["mh"][m])
        coef, *_ = np.linalg.lstsq(a, t[col][m], rcond=None)
        rms = float(np.sqrt(np.mean((a @ coef - t[col][m]) ** 2)))
        out["relations"][f"{rel}.{cls}"] = {"coef": [round(float(c), 6) for c in coef],
                                            "rms": round(rms, 4), "n": int(m.sum())}
    return out


@lru_cache(maxsize=1)
def _coeffs() -> dict:
    return json.loads(COEFFS_PATH.read_text())["relations"]


def relation(name: str, cls: str, teff_k: np.ndarray, mh_dex: np.ndarray) -> np.ndarray:
    """Evaluate a fitted relation (``logg``, ``abs_g`` or ``bp_rp``) for class ``dwarf``/``giant``."""
    coef = np.asarray(_coeffs()[f"{name}.{cls}"]["coef"])
    return design(teff_k, mh_dex) @ coef


def relation_rms(name: str, cls: str) -> float:
    """RMS residual of the fitted relation against the PARSEC points (the scatter to add)."""
    return float(_coeffs()[f"{name}.{cls}"]["rms"])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    iso_dir = Path(argv[0]) if argv else Path(__file__).resolve().parents[3] / "shared/data/real/isochrones"
    coeffs = derive_coeffs(iso_dir)
    COEFFS_PATH.write_text(json.dumps(coeffs, indent=1, sort_keys=True) + "\n")
    for k, v in coeffs["relations"].items():
        print(f"{k:14s} n={v['n']:4d} rms={v['rms']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
