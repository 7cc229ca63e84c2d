"""Reference spectral libraries for LASPM -> ``landing.library_spectra`` (``mgold ingest library``).

A library is a set of rest-frame template spectra with labels, brought onto the red grid of
the pipeline (``spectra.red_wave_*``, ``spectra.dloglam``: exactly ``grid(cfg, "red")`` of
``pipeline/stages/spectra.py``) at LAMOST resolution, so LASPM can fit any library table the
same way. One row per (library, template_id); columns: ``library_columns(cfg)``.

Empirical libraries (``LIBRARIES``: kind -> reader; only ``miles`` so far) go through one
path, ``red_grid_spectrum``:

* vacuum wavelengths (a reader converts air with ``air_to_vac_aa``, Morton 2000 / Ciddor);
* degraded to FWHM lambda / R (``library.resolving_power``, LAMOST R ~ 1800) by a Gaussian LSF
  of sigma sqrt(FWHM_out^2 - FWHM_in^2) / 2.3548 (no smoothing where the input is coarser);
  the kernel is normalised over the good input pixels only (non-finite or flux <= 0 = bad), and
  a red-grid pixel the kernel of a bad input pixel reaches is masked;
* sampled at the red-grid pixel centres by a cubic spline through the degraded spectrum (the
  LSF already includes LAMOST's pixel, as for the observed spectra the LSF is measured on);
  linear interpolation would add a variance of ~h^2/6 (h the input step) and widen a line by
  ~3% at MILES' 0.9 Å sampling;
* pixels outside the library's coverage, or closer than ``library.edge_lsf_sigmas`` LSF sigmas
  to its ends (where the kernel is truncated), are masked: ivar = 0, flux = 0, never
  extrapolated (MILES ends at 7410 AA air, so 7407-8800 AA of the red grid is masked);
* flux divided by its median over the good pixels (the library's flux scale is arbitrary;
  LASPM fits a multiplicative polynomial anyway);
* ivar: the libraries carry no errors, so a photon-noise model with S/N = ``library.assumed_snr``
  at the median flux: var = flux / snr^2 (flux normalised), i.e. ivar = snr^2 / flux; the
  ``snr`` column records the value assumed. Pixels with flux <= 0 get ivar 0.

Labels: MILES ``MILES_params.db`` gives Teff, log g and [Fe/H] (taken as [M/H]); 9999 / 99999
mean missing and land as NULL, with one warning per star: LASPM cannot use a template with a
NULL label (it cannot interpolate a parameter it does not know), so such stars are kept for
inspection only. ``class``: 'dwarf' when log g >= ``labels.supplement_dwarf_logg_min_dex``
(3.5 dex, the pipeline's one dwarf/giant boundary), else 'giant'; NULL without log g.

Problems: an unreadable file, a spectrum without a usable red-grid pixel, a duplicate star and an
unparseable label row are each one 'error' row in ``meta.ingest_errors`` (label rows by their
1-based line number) and count as rejected (the CLI exits 3); the rest lands. Re-ingesting a
library replaces all of its rows in one transaction, together with its ``meta.ingested_files``
rows (kind ``library_<name>``, the sha256 of each file) and a ``meta.runs`` row; another library
name adds rows beside it.

``model_grid_library`` turns the synthetic model-SED grid (``landing.model_sed_grid``) into the
same columns (library 'model_grid', the "old LASPM" predecessor's library), resampled by
``ModelSeds`` of the spectra stage; a stage builds it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from scipy import sparse
from scipy.interpolate import CubicSpline

from ..config import Config
from ..progress import progress
from ..stages.spectra import ModelSeds, grid
from ..datafiles import sha256_of
from ..warehouse import finish_run, new_run_id, record_ingest_error, start_run, transaction
from . import IngestReport


TABLE = "landing.library_spectra"
FWHM_PER_SIGMA = 2.3548   # 2 sqrt(2 ln 2), to the digits the synthetic generator was calibrated with

# MILES (Sanchez-Blazquez et al. 2006; Falcon-Barroso et al. 2011), as shipped in ../shared/data/real
MILES_DIR = Path("libraries/miles_k_m_stars")   # inside the real-data folder
MILES_LABEL_FILE = "MILES_params.db"
MILES_FILE_GLOB = "MILES_res2.50_star_m*V.fits"
MILES_FWHM_AA = 2.5                              # MILES resolution (header FWHM when present)
MILES_MISSING = (9999.0, 99999.0)                # label sentinels of MILES_params.db
_MILES_ID = re.compile(r"(?<![0-9a-z])m(\d{4})v", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------
# wavelength and resolution
# ---------------------------------------------------------------------------------------------
def air_to_vac_aa(wave_air_aa: np.ndarray) -> np.ndarray:
    """Air -> vacuum wavelengths (Å), Morton (2000) / Ciddor refractive index as used by SDSS."""
    wave_air_aa = np.asarray(wave_air_aa, dtype=np.float64)
    s2 = (1e4 / wave_air_aa) ** 2
    n = 1.0 + 8.336624212083e-5 + 2.408926869968e-2 / (1.301065924522e2 - s2) \
        + 1.599740894897e-4 / (3.892568793293e1 - s2)
    return wave_air_aa * n


def gaussian_smoothing_matrix(wave_aa: np.ndarray, sigma_aa: np.ndarray) -> sparse.csr_matrix:
    """Sparse (n, n) row-normalised Gaussian kernel with a per-pixel sigma (0 -> identity)."""
    n = wave_aa.size
    step = np.gradient(wave_aa)
    half = int(np.ceil(4.0 * np.max(sigma_aa / step))) + 1
    rows, cols, vals = [], [], []
    for k in range(-half, half + 1):
        i = np.arange(max(0, -k), min(n, n - k))
        j = i + k
        sig = np.maximum(sigma_aa[i], 1e-6)
        v = np.exp(-0.5 * ((wave_aa[j] - wave_aa[i]) / sig) ** 2)
        v[(sigma_aa[i] <= 0) & (k != 0)] = 0.0
        rows.append(i), cols.append(j), vals.append(v)
    mat = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                            shape=(n, n))
    norm = np.asarray(mat.sum(axis=1)).ravel()
    return sparse.diags(1.0 / norm) @ mat


def degrade_sigma_aa(wave_aa, fwhm_in_aa, resolving_power: float) -> np.ndarray:
    """Gaussian sigma taking FWHM ``fwhm_in_aa`` to lambda / R (0 where the input is coarser)."""
    fwhm_out = np.asarray(wave_aa) / resolving_power
    return np.sqrt(np.clip(fwhm_out ** 2 - np.asarray(fwhm_in_aa) ** 2, 0.0, None)) / FWHM_PER_SIGMA


def red_grid_wave_aa(cfg: Config) -> np.ndarray:
    """Vacuum pixel-centre wavelengths (Å) of the red grid."""
    loglam0, dloglam, n = grid(cfg, "red")
    return 10.0 ** (loglam0 + dloglam * np.arange(n))


def red_grid_spectrum(wave_vac_aa: np.ndarray, flux: np.ndarray, fwhm_in_aa: float, cfg: Config,
                      kernel: sparse.csr_matrix | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One library spectrum (increasing vacuum wavelengths, FWHM ``fwhm_in_aa``) -> red-grid
    ``(flux, ivar)`` float32 (see the module doc). ``kernel``: the smoothing matrix of this input
    grid, when the caller caches it (``library_kernel``)."""
    wave = np.asarray(wave_vac_aa, dtype=np.float64)
    flux = np.asarray(flux, dtype=np.float64)
    if kernel is None:
        kernel = library_kernel(wave, fwhm_in_aa, cfg)
    good = np.isfinite(flux) & (flux > 0)
    num = kernel @ np.where(good, flux, 0.0)
    den = kernel @ good.astype(np.float64)
    loglam0, dloglam, n = grid(cfg, "red")
    out_wave = red_grid_wave_aa(cfg)
    edge = cfg.library.edge_lsf_sigmas / cfg.library.resolving_power / FWHM_PER_SIGMA
    lo = wave[0] * (1.0 + edge) if wave.size else np.inf
    hi = wave[-1] * (1.0 - edge) if wave.size else -np.inf
    half = 10.0 ** (0.5 * dloglam)
    inside = (out_wave / half >= lo) & (out_wave * half <= hi)
    out = np.zeros(n)
    clean = np.zeros(n, dtype=bool)
    if inside.any():
        d = np.interp(out_wave[inside], wave, den)
        f = CubicSpline(wave, num)(out_wave[inside])
        ok = d >= 1.0 - 1e-6          # no bad input pixel within the kernel's reach
        out[inside] = np.where(ok, f, 0.0)
        clean[inside] = ok
    return noise_model(out, clean, cfg.library.assumed_snr)


def library_kernel(wave_aa: np.ndarray, fwhm_in_aa: float, cfg: Config) -> sparse.csr_matrix:
    """The LSF-degradation matrix of an input grid (FWHM ``fwhm_in_aa`` -> lambda / R)."""
    return gaussian_smoothing_matrix(wave_aa, degrade_sigma_aa(wave_aa, fwhm_in_aa,
                                                               cfg.library.resolving_power))


def noise_model(flux: np.ndarray, good: np.ndarray, snr: float) -> tuple[np.ndarray, np.ndarray]:
    """Median-normalised float32 flux and photon-noise ivar = snr^2 / flux on ``good`` pixels
    with flux > 0; other pixels flux 0, ivar 0. No usable pixel: all zeros."""
    good = good & np.isfinite(flux) & (flux > 0)
    if not good.any():
        return np.zeros(flux.size, np.float32), np.zeros(flux.size, np.float32)
    norm = flux / np.median(flux[good])
    ivar = np.where(good, snr * snr / np.where(good, norm, 1.0), 0.0)
    return np.where(good, norm, 0.0).astype(np.float32), ivar.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# the output table
# ---------------------------------------------------------------------------------------------
def library_columns(cfg: Config) -> dict[str, str]:
    """DuckDB columns of ``landing.library_spectra`` (and of any library table) under ``cfg``."""
    n = grid(cfg, "red")[2]
    return {"library": "varchar", "template_id": "bigint", "name": "varchar",
            "teff_k": "double", "logg_dex": "double", "mh_dex": "double", "class": "varchar",
            "snr": "double", "loglam0": "double", "dloglam": "double", "n_pix": "integer",
            "n_good_pix": "integer", "flux": f"float[{n}]", "ivar": f"float[{n}]"}


def spectral_class(logg_dex: np.ndarray, cfg: Config) -> list[str | None]:
    """'dwarf' / 'giant' by log g (module doc); None where log g is missing."""
    cut = cfg.labels.supplement_dwarf_logg_min_dex
    return [None if not np.isfinite(g) else ("dwarf" if g >= cut else "giant") for g in logg_dex]


def library_table(library: str, template_id: np.ndarray, name: list[str], labels: np.ndarray,
                  flux: np.ndarray, ivar: np.ndarray, cfg: Config) -> pa.Table:
    """Rows of ``library_columns``: labels (m, 3) teff, logg, [M/H] with NaN = NULL; flux and ivar
    (m, n) on the red grid."""
    loglam0, dloglam, n = grid(cfg, "red")
    m = len(name)
    labels = np.asarray(labels, dtype=np.float64).reshape(m, 3)
    flux = np.asarray(flux, dtype=np.float32).reshape(m, n)
    ivar = np.asarray(ivar, dtype=np.float32).reshape(m, n)

    def fixed(values: np.ndarray) -> pa.FixedSizeListArray:
        return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), pa.float32()), n)

    return pa.table({
        "library": pa.array([library] * m, pa.string()),
        "template_id": pa.array(np.asarray(template_id, dtype=np.int64)),
        "name": pa.array(name, pa.string()),
        "teff_k": pa.array(labels[:, 0], from_pandas=True),
        "logg_dex": pa.array(labels[:, 1], from_pandas=True),
        "mh_dex": pa.array(labels[:, 2], from_pandas=True),
        "class": pa.array(spectral_class(labels[:, 1], cfg), pa.string()),
        "snr": pa.array(np.full(m, cfg.library.assumed_snr)),
        "loglam0": pa.array(np.full(m, loglam0)),
        "dloglam": pa.array(np.full(m, dloglam)),
        "n_pix": pa.array(np.full(m, n, np.int32)),
        "n_good_pix": pa.array((ivar > 0).sum(axis=1).astype(np.int32)),
        "flux": fixed(flux),
        "ivar": fixed(ivar),
    })


def model_grid_library(table: pa.Table, cfg: Config) -> pa.Table:
    """``landing.model_sed_grid`` rows -> library 'model_grid' on the red grid (``library_columns``).

    Nodes are ordered by (family, teff_k, logg_dex, mh_dex) and numbered from 0 in that order
    (``template_id``); ``name`` is 'family:teff/logg/mh'. The SEDs are already at the model
    grid's resolution, so they are only resampled (``ModelSeds.on_grid``, flux-conserving; pixels
    the node does not cover masked), then normalised with the noise model of the module doc."""
    order = [(c, "ascending") for c in ("family", "teff_k", "logg_dex", "mh_dex")]
    nodes = table.select(["family", "teff_k", "logg_dex", "mh_dex", "loglam0", "dloglam",
                          "flux"]).sort_by(order)
    seds = ModelSeds(nodes, grid(cfg, "red"))
    pairs = [noise_model(seds.on_grid(k).astype(np.float64), np.ones(seds.out_grid[2], bool),
                         cfg.library.assumed_snr) for k in range(nodes.num_rows)]
    n = seds.out_grid[2]
    flux = np.stack([p[0] for p in pairs]) if pairs else np.zeros((0, n), np.float32)
    ivar = np.stack([p[1] for p in pairs]) if pairs else np.zeros((0, n), np.float32)
    names = [f"{f}:{t:g}/{g:g}/{m:g}" for f, (t, g, m) in zip(seds.family, seds.labels)]
    return library_table("model_grid", np.arange(nodes.num_rows), names, seds.labels, flux, ivar, cfg)


# ---------------------------------------------------------------------------------------------
# readers: one per library kind
# ---------------------------------------------------------------------------------------------
@dataclass
class LibraryStar:
    """One template as read: native vacuum wavelengths and flux, its resolution and labels."""

    template_id: int
    name: str
    labels: tuple[float, float, float]     # teff_k, logg_dex, mh_dex; NaN = missing
    wave_vac_aa: np.ndarray
    flux: np.ndarray
    fwhm_aa: float
    file: Path


@dataclass
class LibraryRead:
    """What a reader reports beside the stars it yields: problems (file, row, reason, severity),
    landed files (sha256, path, n_rows) and files skipped as repeats of an earlier input."""

    problems: list[tuple[Path, int | None, str, str]] = field(default_factory=list)
    files: list[tuple[str, Path, int]] = field(default_factory=list)
    skipped: int = 0

    def problem(self, file, reason: str, severity: str = "error", row: int | None = None) -> None:
        self.problems.append((Path(file), row, reason, severity))


@dataclass(frozen=True)
class LibraryKind:
    """A library reader: ``read(files, report)`` yields LibraryStar one at a time (memory stays
    one native spectrum) and fills ``report``; ``patterns``: the files a folder contributes
    (others in it are ignored)."""

    name: str
    doc: str
    patterns: tuple[str, ...]
    read: Callable[[list[Path], LibraryRead], Iterator[LibraryStar]]


def read_miles_labels(path: Path) -> tuple[dict[str, tuple[float, float, float]], list[tuple[int, str]]]:
    """``MILES_params.db`` -> ({'m0010': (teff_k, logg_dex, feh_dex)}, [(line, problem)]).

    9999 / 99999 (missing) -> NaN. Unparseable rows (the public file has one, '022.') and repeats
    of an id (first kept) are problems, numbered by 1-based line."""
    labels: dict[str, tuple[float, float, float]] = {}
    problems: list[tuple[int, str]] = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        try:
            if len(parts) != 4:
                raise ValueError
            sid, values = int(parts[0]), [float(p) for p in parts[1:]]
        except ValueError:
            problems.append((lineno, f"unparseable MILES label row {line.strip()!r} "
                                     "(expected: id Teff logg [Fe/H])"))
            continue
        key = f"m{sid:04d}"
        if key in labels:
            problems.append((lineno, f"repeated label row for {key}; the first is kept"))
            continue
        labels[key] = tuple(np.nan if v in MILES_MISSING or not np.isfinite(v) else v
                            for v in values)
    return labels, problems


def miles_star_id(path: Path) -> str | None:
    """'m0010' from a MILES file name (``..._m0010V.fits``), None when the name has no id."""
    m = _MILES_ID.search(Path(path).name)
    return f"m{m.group(1)}" if m else None


def read_miles_spectrum(path: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """``(air wavelengths Å, flux, FWHM Å)`` of a MILES 1-D FITS file (linear CRVAL1 / CDELT1).

    Raises ValueError naming what is wrong with the file."""
    from astropy.io import fits

    with fits.open(path) as hdul:
        hdr, data = hdul[0].header, hdul[0].data
        if data is None:
            raise ValueError("primary HDU has no data (not a MILES 1-D spectrum)")
        flux = np.asarray(data, dtype=np.float64).squeeze()
        if flux.ndim != 1 or flux.size < 2:
            raise ValueError(f"primary HDU has shape {np.shape(data)}, expected a 1-D spectrum")
        try:
            crval, cdelt = float(hdr["CRVAL1"]), float(hdr["CDELT1"])
        except (KeyError, ValueError, TypeError):
            raise ValueError("CRVAL1 / CDELT1 missing or not numbers: no wavelength scale") from None
        if not (np.isfinite(crval) and np.isfinite(cdelt) and cdelt > 0):
            raise ValueError(f"wavelength scale CRVAL1={crval}, CDELT1={cdelt} is not increasing")
        fwhm = float(hdr.get("FWHM", MILES_FWHM_AA))
    wave_air = crval + cdelt * (np.arange(flux.size) + 1 - float(hdr.get("CRPIX1", 1)))
    return wave_air, flux, fwhm


def read_miles(files: list[Path], out: LibraryRead) -> Iterator[LibraryStar]:
    """MILES stars: ``*.fits`` spectra (air, linear) and their labels from ``MILES_params.db``."""
    seen_sha: set[str] = set()
    labels: dict[str, tuple[float, float, float]] = {}
    label_files, spectra = [], []
    for f in files:
        if f.name.endswith(".db"):
            label_files.append(f)
        elif f.name.lower().endswith((".fits", ".fits.gz")):
            spectra.append(f)
        else:
            out.problem(f, f"not a MILES spectrum (.fits) or label file ({MILES_LABEL_FILE})")

    def new_file(f: Path) -> str | None:
        if not f.is_file():
            out.problem(f, "file not found")
            return None
        sha = sha256_of(f)
        if sha in seen_sha:
            out.skipped += 1
            return None
        seen_sha.add(sha)
        return sha

    for f in label_files:
        if (sha := new_file(f)) is None:
            continue
        try:
            found, problems = read_miles_labels(f)
        except (OSError, UnicodeDecodeError) as e:
            out.problem(f, f"unreadable label file ({type(e).__name__}: {e})")
            continue
        for lineno, why in problems:
            out.problem(f, why, row=lineno)
        for k, v in found.items():
            labels.setdefault(k, v)
        out.files.append((sha, f, len(found)))
    if spectra and not label_files:
        out.problem(spectra[0].parent, f"no {MILES_LABEL_FILE} among the inputs: "
                                       "every star lands with NULL labels")
    first: dict[str, Path] = {}
    for f in progress(spectra, desc="miles", unit="files"):
        if (sha := new_file(f)) is None:
            continue
        sid = miles_star_id(f)
        if sid is None:
            out.problem(f, "no MILES star id (mNNNNV) in the file name")
            continue
        if sid in first:
            out.problem(f, f"star {sid} again (first kept: {first[sid]})")
            continue
        try:
            wave_air, flux, fwhm = read_miles_spectrum(f)
        except Exception as e:  # noqa: BLE001 - one bad file must not stop the library
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            out.problem(f, msg if isinstance(e, ValueError) else f"unreadable ({type(e).__name__}: {msg})")
            continue
        first[sid] = f
        lab = labels.get(sid)
        if lab is None or not all(np.isfinite(lab)):
            missing = "no label row" if lab is None else "missing " + ", ".join(
                n for n, v in zip(("teff_k", "logg_dex", "mh_dex"), lab) if not np.isfinite(v))
            out.problem(f, f"{sid}: {missing} in {MILES_LABEL_FILE}; lands with NULL labels "
                           "(LASPM cannot use it as a template)", severity="warning")
        out.files.append((sha, f, 1))
        yield LibraryStar(int(sid[1:]), sid, lab or (np.nan,) * 3, air_to_vac_aa(wave_air), flux, fwhm, f)


LIBRARIES: dict[str, LibraryKind] = {k.name: k for k in (
    LibraryKind("miles", "MILES stellar library (air, 2.5 Å FWHM, 3540-7410 Å; labels in "
                         f"{MILES_LABEL_FILE})", ("*.fits", "*.fits.gz", MILES_LABEL_FILE), read_miles),
)}


# ---------------------------------------------------------------------------------------------
# ingest
# ---------------------------------------------------------------------------------------------
def expand_library_paths(paths: Iterable[Path | str], patterns: tuple[str, ...]) -> list[Path]:
    """Files as given; folders -> their files matching ``patterns`` (recursively, sorted).
    Paths that do not exist are kept so the reader reports them."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted({f for pat in patterns for f in p.rglob(pat) if f.is_file()})
        else:
            out.append(p)
    return out


def _array_size(con: duckdb.DuckDBPyConnection) -> int | None:
    """Pixels of the existing table's flux arrays (None: no table)."""
    row = con.execute("select data_type from information_schema.columns where table_schema = "
                      "'landing' and table_name = 'library_spectra' and column_name = 'flux'").fetchone()
    if row is None:
        return None
    m = re.search(r"\[(\d+)\]", row[0])
    return int(m.group(1)) if m else None


def _replace_rows(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table,
                  files: list[tuple[str, Path, int]], run_id: str, cfg: Config) -> None:
    """One transaction: this library's rows and ingested-file rows replaced, its run finished."""
    cols = library_columns(cfg)
    n = grid(cfg, "red")[2]
    kind = f"library_{name}"
    with transaction(con):
        size = _array_size(con)
        if size is not None and size != n:
            others = con.execute(f"select string_agg(distinct library, ', ') from {TABLE} "
                                 "where library <> ?", [name]).fetchone()[0]
            if others:
                raise ValueError(f"{TABLE} holds {others} on a {size}-pixel red grid but this "
                                 f"config's red grid has {n} pixels: ingest every library with "
                                 "the same spectra.red_wave_* / spectra.dloglam")
            con.execute(f"drop table {TABLE}")
        con.execute(f"create table if not exists {TABLE} ("
                    + ", ".join(f'"{c}" {t}' for c, t in cols.items()) + ")")
        con.execute(f"delete from {TABLE} where library = ?", [name])
        con.register("_library_rows", table)
        try:
            con.execute(f"insert into {TABLE} select * from _library_rows")
        finally:
            con.unregister("_library_rows")
        con.execute("delete from meta.ingested_files where kind = ?", [kind])
        for sha, path, n_rows in files:
            con.execute("insert into meta.ingested_files values (?, ?, ?, ?, ?, now())",
                        [sha, str(path), kind, run_id, n_rows])
        finish_run(con, run_id, "ok")


def ingest_library(con: duckdb.DuckDBPyConnection, name: str, paths: list[Path],
                   cfg: Config) -> IngestReport:
    """Read library ``name`` (a key of ``LIBRARIES``) from ``paths`` and replace its rows of
    ``landing.library_spectra`` (module doc). ``con``: an open warehouse connection.

    Raises ValueError for an unknown library or a red grid that clashes with the libraries
    already landed; bad files and rows are reported, never raised."""
    if name not in LIBRARIES:
        raise ValueError(f"unknown library {name!r}; choose one of {', '.join(LIBRARIES)}")
    kind = LIBRARIES[name]
    run_id = new_run_id()
    start_run(con, cfg, run_id, f"ingest library {name}")
    files = expand_library_paths(paths, kind.patterns)
    read = LibraryRead()
    ids, names, labels, fluxes, ivars = [], [], [], [], []
    kernels, rejected_files, seen = {}, set(), set()
    for star in kind.read(files, read):
        why = None
        if star.template_id in seen:
            why = f"{star.name}: template_id {star.template_id} again (first kept)"
        else:
            key = (star.wave_vac_aa.size, star.wave_vac_aa[0], star.wave_vac_aa[-1], star.fwhm_aa)
            if key not in kernels:
                kernels[key] = library_kernel(star.wave_vac_aa, star.fwhm_aa, cfg)
            flux, ivar = red_grid_spectrum(star.wave_vac_aa, star.flux, star.fwhm_aa, cfg, kernels[key])
            if not (ivar > 0).any():
                why = (f"{star.name}: no usable pixel on the red grid "
                       f"({cfg.spectra.red_wave_min_aa:g}-{cfg.spectra.red_wave_max_aa:g} Å)")
        if why:
            read.problem(star.file, why)
            rejected_files.add(star.file)
            continue
        seen.add(star.template_id)
        ids.append(star.template_id), names.append(star.name), labels.append(star.labels)
        fluxes.append(flux), ivars.append(ivar)
    report = IngestReport(files_seen=len(files), files_skipped=read.skipped, outputs=[TABLE])
    for path, row, reason, severity in read.problems:
        record_ingest_error(con, run_id, path, reason, severity, row=row)
        report.rejected += severity == "error"
    if not ids:
        record_ingest_error(con, run_id, Path(paths[0]) if paths else Path("."),
                            f"no {name} star could be read: {TABLE} left as it was")
        report.rejected += 1
        finish_run(con, run_id, "failed")
        return report
    table = library_table(name, np.array(ids), names, np.array(labels), np.stack(fluxes),
                          np.stack(ivars), cfg)
    kept = [f for f in read.files if f[1] not in rejected_files]
    _replace_rows(con, name, table, kept, run_id, cfg)
    report.files_loaded = len(kept)
    report.rows_loaded = table.num_rows
    return report
