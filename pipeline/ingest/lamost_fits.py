"""Read one LAMOST low-resolution spectrum file into a header row and arrays.

Pure functions (no DuckDB, no Parquet) so they run in worker processes. The FITS
structure is walked by hand (header blocks located, 80-character cards parsed,
data read with ``np.frombuffer``): opening each file with ``astropy.io.fits``
costs ~8 ms, this path well under 1 ms, which is what makes the 500 spectra/s
target reachable on 2 cores. Only what LAMOST writes is supported (fixed-format
cards, no CONTINUE long strings, no HIERARCH); anything else is refused by name.

Layouts (``layout`` column):

``dr1_pilot``   primary image 5xN, ``EXTEN0`` names row 2 "Subcontinuum": row 2 is
                NOT wavelength; wavelength = 10**(COEFF0 + COEFF1*i). No OBSID/SNR*.
``image5``      DR2-DR8 primary image 5xN: flux, ivar, wavelength, andmask, ormask.
``coadd_table`` DR9+/DR13: empty primary + 1-row BINTABLE ``COADD`` with array
                columns FLUX, IVAR, WAVELENGTH, ANDMASK, ORMASK.
Medium-resolution files (``med-*`` names, ``COADD_B``/``COADD_R`` HDUs) are refused.

Conventions:

* ``pixmask`` = ORMASK (a pixel flagged in *any* exposure), else ANDMASK when a
  file has no ORMASK; ORMASK is the conservative choice for template fitting.
* Non-finite flux or ivar pixels get flux = 0, ivar = 0 (DESIGN: ivar <= 0 is the
  only bad-pixel convention) and a warning; negative ivar is clipped to 0.
* ``obsid`` absent (DR1/DR2 files): a negative id derived from the file's content,
  ``-(int.from_bytes(sha256(KEY)[:8], "big") >> 1) - 1`` with KEY =
  ``"designation|lmjd|planid|spid|fiberid"`` (header values, e.g.
  ``"LAMOST J024510.46+514502.3|55919|B5591903|1|1"``; LAMOST's own unique spectrum key
  plus the designation), or, when any of those keys is missing, KEY = the hex sha256 of
  the file's FITS bytes after gunzip (so a ``.fits`` and its ``.fits.gz`` get one id). The
  file name never enters: re-ingesting the file, or a copy under another name, gives
  the same id (and a duplicate-obsid rejection). Negative ids never collide with
  LAMOST's positive OBSIDs. Each such file gets a warning row naming the id and its KEY.
* Header sentinels: the 1D pipeline writes ``Z = Z_ERR = -9999`` when its RV fit fails
  and ``SNR* = -9999`` for a band without data. Values in ``HEADER_SENTINELS`` (the
  catalogue sentinels +-9999 / +-99999; +-99 too for Z, Z_ERR, where no star can be) and
  NaN/inf become NULL with one warning per spectrum; a required RA/DEC sentinel rejects
  the file. 99 is NOT a sentinel for S/N: DR1 files cap SN_* at 99.0 (8 of the 45 pilot
  files in ../shared/data/real, 7 in SN_I), nor for RV (99 km/s is a velocity).
* Spectra shorter than ``ingest.min_pixels`` are refused (LAMOST LRS: ~3750-3910 px).
* ``data_v`` = DATA_V ("LAMOST DR8"); when absent (DR1/DR2 era files)
  ``"LAMOST pipeline <VERSPIPE>"`` (e.g. "LAMOST pipeline v2.6.4"), else "unknown".
* ``rv_kms`` = header RV when present (``rv_source`` 'header'), else c*z
  (``rv_source`` 'c*z'); NULL with no (or a sentinel) Z.
* A wavelength row that decreases (reversed) or turns back is refused as such. The
  grid is then fitted as log10(wave) = loglam0 + dloglam*i and rejected when any pixel
  deviates by more than ``rtol`` (relative); when COEFF0/COEFF1 describe the same grid
  within ``rtol`` the exact header values are stored (float32 wavelengths otherwise
  bias loglam0 by ~1e-3 pixel).
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .catalog_maps import SENTINELS_ANY

C_KMS = 299792.458
LN10 = float(np.log(10.0))
BLOCK = 2880
CARD = 80
END_CARD = b"END" + b" " * 77

# header key -> (column, kind); kind in {'float', 'int', 'str'}
OPTIONAL_KEYS = {
    "DESIG": ("designation", "str"), "SUBCLASS": ("subclass", "str"),
    "Z": ("z", "float"), "Z_ERR": ("z_err", "float"),
    "LMJD": ("lmjd", "int"), "MJD": ("mjd", "int"), "PLANID": ("planid", "str"),
    "SPID": ("spid", "int"), "FIBERID": ("fiberid", "int"),
}
REQUIRED_KEYS = {"RA": ("ra_deg", "float"), "DEC": ("dec_deg", "float"), "CLASS": ("class", "str")}
BANDS = ("u", "g", "r", "i", "z")
WANTED_KEYS = frozenset({
    "SIMPLE", "BITPIX", "NAXIS", "PCOUNT", "BSCALE", "BZERO", "XTENSION", "EXTNAME", "TFIELDS",
    "EXTEN0", "COEFF0", "COEFF1", "OBSID", "RV", "DATA_V", "VERSPIPE",
    *REQUIRED_KEYS, *OPTIONAL_KEYS, *(f"SNR{b.upper()}" for b in BANDS),
    *(f"SN_{b.upper()}" for b in BANDS),
})
_WANTED_PADDED = frozenset(k.ljust(8) for k in WANTED_KEYS)

# columns of landing.lamost_headers filled from a file (file/sha/run_id added by the caller)
HEADER_COLUMNS = (
    "obsid", "designation", "ra_deg", "dec_deg", "class", "subclass", "z", "z_err", "rv_kms",
    "rv_source", *(f"snr_{b}" for b in BANDS), "lmjd", "mjd", "planid", "spid", "fiberid",
    "data_v", "n_pixels", "wave_min_aa", "wave_max_aa", "is_star", "layout",
)

# column -> values that mean "no value" (see module docstring); NaN/inf are NULL too
HEADER_SENTINELS = {
    "z": SENTINELS_ANY + (99.0, -99.0), "z_err": SENTINELS_ANY + (99.0, -99.0),
    "rv_kms": SENTINELS_ANY, **{f"snr_{b}": SENTINELS_ANY for b in BANDS},
}
OBSID_KEY_COLUMNS = ("designation", "lmjd", "planid", "spid", "fiberid")
LRS_PIXELS = "~3750-3910"   # pixels of the real LAMOST LRS files in ../shared/data/real (all layouts)

Header = dict  # parsed cards: {KEY: value}

_DTYPES = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
_TFORM = {"L": (1, "u1"), "B": (1, "u1"), "I": (2, ">i2"), "J": (4, ">i4"), "K": (8, ">i8"),
          "E": (4, ">f4"), "D": (8, ">f8"), "A": (1, "S1")}


class BadSpectrum(Exception):
    """The file cannot be landed; the message is the one-line cause."""


@dataclass
class Spectrum:
    """One spectrum as read: header row (HEADER_COLUMNS) + arrays on a log-linear grid."""

    header: dict
    loglam0: float
    dloglam: float
    flux: np.ndarray      # float32
    ivar: np.ndarray      # float32, 0 = bad pixel
    pixmask: np.ndarray   # int32
    warnings: list[str] = field(default_factory=list)
    pixels_fixed: bool = False   # flux / ivar differ from the file's (non-finite masked, ivar < 0 clipped)


def file_bytes(path: Path) -> tuple[bytes, str]:
    """(decompressed bytes, sha256 of the bytes on disk); gzip detected by magic number."""
    raw = path.read_bytes()
    sha = hashlib.sha256(raw).hexdigest()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except EOFError:
            raise BadSpectrum("truncated gzip stream (file cut short)") from None
        except (OSError, zlib.error) as exc:
            raise BadSpectrum(f"corrupt gzip stream: {exc}") from None
    return raw, sha


def stable_obsid(key: str) -> int:
    """Negative 63-bit id of a spectrum without OBSID, from its KEY (see module docstring)."""
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    return -(h >> 1) - 1


def derive_obsid(row: dict, content: bytes) -> tuple[int, str]:
    """(id, warning) for a header row without OBSID: KEY from the row, else the content's sha256."""
    parts = [row.get(c) for c in OBSID_KEY_COLUMNS]
    if any(p is None or p == "" for p in parts):
        key = hashlib.sha256(content).hexdigest()
        how = (f"sha256 of the file's FITS bytes {key[:16]}... ({', '.join(OBSID_KEY_COLUMNS)} "
               "incomplete)")
    else:
        key = "|".join(str(p) for p in parts)
        how = f"{'|'.join(OBSID_KEY_COLUMNS)} {key!r}"
    obsid = stable_obsid(key)
    return obsid, f"no OBSID: keyed by derived obsid {obsid} = hash of {how}"


def null_sentinels(row: dict, labels: dict[str, str], warnings: list[str]) -> None:
    """NULL the HEADER_SENTINELS values and NaN/inf of ``row`` in place; one warning for all.

    ``labels`` names each column as the file does (``{"z": "header key Z"}``); default
    ``column <name>``."""
    found, nulled = [], set()
    for col, sentinels in HEADER_SENTINELS.items():
        value = row.get(col)
        if value is not None and (not math.isfinite(value) or value in sentinels):
            found.append(f"{labels.get(col, f'column {col}')} = {value:g}")
            nulled.add(col)
            row[col] = None
    if found:
        no_rv = nulled & {"z", "rv_kms"} and row.get("z") is None and row.get("rv_kms") is None
        warnings.append(f"sentinel or non-finite value(s) stored as NULL: {', '.join(found)}"
                        + (" (no radial velocity)" if no_rv else ""))


def fill_rv(row: dict, given: str) -> None:
    """``rv_kms``/``rv_source``: the given RV (source ``given`` unless named), else c*z, else NULL."""
    if row["rv_kms"] is not None:
        row["rv_source"] = row.get("rv_source") or given
    elif row["z"] is not None:
        row["rv_kms"], row["rv_source"] = C_KMS * row["z"], "c*z"
    else:
        row["rv_source"] = None


def check_length(n: int, min_pixels: int) -> None:
    """BadSpectrum for a spectrum far shorter than a LAMOST LRS one (a cut or a stamp)."""
    if n < min_pixels:
        raise BadSpectrum(f"{n} pixels, far fewer than a LAMOST LRS spectrum ({LRS_PIXELS}): "
                          f"refused below ingest.min_pixels = {min_pixels}")


def read_spectrum(path: Path, data: bytes, rtol: float, min_pixels: int) -> Spectrum:
    """Parse one LAMOST LRS file already in memory; raise BadSpectrum with the cause."""
    name = path.name
    if name.startswith("med-"):
        raise BadSpectrum("medium-resolution (MRS) file refused: mgold ingests low-resolution "
                          "spectra only")
    if not data:
        raise BadSpectrum("empty file")
    if not data.startswith(b"SIMPLE  ="):
        raise BadSpectrum("not a FITS file (does not start with a SIMPLE card)")
    hdr, data_at = _header_at(data, 0, "primary")
    warnings: list[str] = []
    naxis = _int_key(hdr, "NAXIS", "primary")
    if naxis == 0:
        layout = "coadd_table"
        arrays = _coadd_arrays(data, data_at)
        wave = arrays["WAVELENGTH"]
    elif naxis == 2:
        img = _image(data, hdr, data_at)
        if img.shape[0] < 4:
            raise BadSpectrum(f"primary image has {img.shape[0]} rows, expected 5 "
                              "(flux, ivar, wavelength, andmask, ormask)")
        arrays = {"FLUX": img[0], "IVAR": img[1], "ANDMASK": img[3],
                  "ORMASK": img[4] if img.shape[0] > 4 else None}
        if "SUBCONTINUUM" in str(hdr.get("EXTEN0", "")).upper():
            layout = "dr1_pilot"
            c0, c1 = _float_key(hdr, "COEFF0"), _float_key(hdr, "COEFF1")
            wave = None
        else:
            layout = "image5"
            wave = img[2]
    else:
        raise BadSpectrum(f"unsupported FITS layout: primary NAXIS = {naxis}")

    flux = np.asarray(arrays["FLUX"], dtype=np.float32)
    ivar = np.asarray(arrays["IVAR"], dtype=np.float32)
    n = flux.size
    if ivar.size != n:
        raise BadSpectrum(f"flux has {n} pixels but ivar has {ivar.size}")
    check_length(n, min_pixels)
    if wave is None:
        loglam0, dloglam = c0, c1
    else:
        if wave.size != n:
            raise BadSpectrum(f"flux has {n} pixels but wavelength has {wave.size}")
        loglam0, dloglam = fit_loglinear(np.asarray(wave, dtype=np.float64), rtol,
                                         _opt_float(hdr, "COEFF0"), _opt_float(hdr, "COEFF1"))
    mask = arrays["ORMASK"] if arrays.get("ORMASK") is not None else arrays["ANDMASK"]
    pixmask = np.zeros(n, np.int32) if mask is None else np.asarray(mask).astype(np.int32)
    flux, ivar = clean_pixels(flux, ivar, warnings)

    row = header_row(hdr, data, warnings)
    row.update(n_pixels=n, wave_min_aa=float(10 ** loglam0),
               wave_max_aa=float(10 ** (loglam0 + dloglam * (n - 1))), layout=layout)
    return Spectrum(row, loglam0, dloglam, flux, ivar, pixmask, warnings)


# --- worker entry point (process pool) ----------------------------------------------

_KNOWN_SHA: set[str] = set()
_RTOL = 1e-6
_MIN_PIXELS = 0


def init_worker(known_sha: set[str], rtol: float, min_pixels: int) -> None:
    global _KNOWN_SHA, _RTOL, _MIN_PIXELS
    _KNOWN_SHA, _RTOL, _MIN_PIXELS = known_sha, rtol, min_pixels


def read_one(path: Path) -> tuple[Path, str | None, Spectrum | str]:
    """(path, sha256, Spectrum | 'skipped' | rejection reason); runs in a worker."""
    try:
        data, sha = file_bytes(path)
    except BadSpectrum as exc:
        return path, None, str(exc)
    except OSError as exc:
        return path, None, f"cannot read file: {exc.strerror or exc}"
    if sha in _KNOWN_SHA:
        return path, sha, "skipped"
    try:
        return path, sha, read_spectrum(path, data, _RTOL, _MIN_PIXELS)
    except BadSpectrum as exc:
        return path, sha, str(exc)
    except Exception as exc:  # a malformed file must never stop the batch
        return path, sha, f"unreadable file ({type(exc).__name__}: {exc})"


def read_many(paths: list[Path], spill_dir: Path | None = None) -> tuple[list, tuple | None]:
    """``read_one`` over a chunk: one IPC message per chunk instead of per file.

    Returns ``(results, spill)``. With ``spill_dir``, the arrays of the chunk's spectra are
    written to one raw file there instead of riding in the result: a pool pickles results
    through a pipe at ~40 MB/s on 2 cores, slower than the files are parsed, while a file in
    the page cache costs a memcpy (the parent's ``unspill`` reads it back and deletes it).
    """
    results = [read_one(p) for p in paths]
    specs = [r[2] for r in results if isinstance(r[2], Spectrum)]
    if spill_dir is None or not specs:
        return results, None
    path = Path(spill_dir) / f".spill-{uuid.uuid4().hex}.tmp"   # recover() deletes strays
    with open(path, "wb") as fh:
        for attr, dtype in SPILL_ARRAYS:
            np.concatenate([np.asarray(getattr(s, attr), dtype) for s in specs]).tofile(fh)
    lengths = [s.flux.size for s in specs]
    for s in specs:
        s.flux = s.ivar = s.pixmask = None
    return results, (str(path), lengths)


SPILL_ARRAYS = (("flux", np.float32), ("ivar", np.float32), ("pixmask", np.int32))


def unspill(results: list, spill: tuple | None) -> list:
    """Put the arrays ``read_many`` spilled back into its spectra (views of one buffer)."""
    if spill is None:
        return results
    path, lengths = spill
    data = np.fromfile(path, dtype=np.uint8)
    os.unlink(path)
    ends = np.cumsum(lengths)
    n = int(ends[-1]) if len(ends) else 0
    arrays, offset = {}, 0
    for attr, dtype in SPILL_ARRAYS:                      # laid out one after the other, as written
        arrays[attr] = np.frombuffer(data, dtype, count=n, offset=offset)
        offset += n * np.dtype(dtype).itemsize
    specs = [r[2] for r in results if isinstance(r[2], Spectrum)]
    for s, start, end in zip(specs, np.r_[0, ends[:-1]], ends):
        for attr, values in arrays.items():
            setattr(s, attr, values[start:end])
    return results


def clean_pixels(flux: np.ndarray, ivar: np.ndarray,
                 warnings: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Mask non-finite pixels (ivar = 0), clip ivar < 0; BadSpectrum if nothing usable."""
    bad = ~(np.isfinite(flux) & np.isfinite(ivar))
    if bad.any():
        flux = np.where(bad, np.float32(0), flux)
        ivar = np.where(bad, np.float32(0), ivar)
        warnings.append(f"{int(bad.sum())} non-finite flux/ivar pixel(s) masked (ivar = 0)")
    if (ivar < 0).any():
        ivar = np.maximum(ivar, np.float32(0))
    if flux.size == 0 or not (ivar > 0).any():
        raise BadSpectrum("all pixels have ivar <= 0 (no usable data)")
    return flux, ivar


def fit_loglinear(wave: np.ndarray, rtol: float, coeff0: float | None = None,
                  coeff1: float | None = None) -> tuple[float, float]:
    """(loglam0, dloglam) of a log-linear grid; BadSpectrum when not log-linear within rtol."""
    n = wave.size
    if n < 2 or not np.all(np.isfinite(wave)) or np.any(wave <= 0):
        raise BadSpectrum("wavelength grid has non-positive or non-finite values")
    step = np.diff(wave)
    if not (step > 0).all():
        if (step < 0).all():
            raise BadSpectrum(f"wavelength grid is decreasing ({wave[0]:.1f} -> {wave[-1]:.1f} AA: "
                              "a reversed row); LAMOST grids increase")
        i = int(np.argmax(step <= 0))
        raise BadSpectrum(f"wavelength grid is not increasing at pixel {i + 1} "
                          f"({wave[i]:.2f} -> {wave[i + 1]:.2f} AA)")
    loglam = np.log10(wave)
    i = np.arange(n, dtype=np.float64)
    im, lm = (n - 1) / 2.0, loglam.mean()
    slope = float(((i - im) * (loglam - lm)).sum() / ((i - im) ** 2).sum())
    start = float(lm - slope * im)
    # relative wavelength deviation = 10**(d loglam) - 1 ~ ln(10) * |d loglam|
    dev = float(np.expm1(LN10 * np.abs(loglam - (start + slope * i)).max()))
    if not slope > 0 or dev > rtol:
        raise BadSpectrum(f"wavelength grid is not log-linear (max relative deviation "
                          f"{dev:.2e} > ingest.loglinear_rtol {rtol:.0e})")
    if coeff0 is not None and coeff1 and abs(coeff1 / slope - 1) < 1e-3:
        k = round((start - coeff0) / coeff1)
        header_start = coeff0 + k * coeff1
        if np.expm1(LN10 * np.abs(loglam - (header_start + coeff1 * i)).max()) <= rtol:
            return float(header_start), float(coeff1)
    return start, slope


def header_row(hdr: Header, content: bytes, warnings: list[str]) -> dict:
    """Header columns from FITS cards; missing optional keys and sentinels -> NULL, one warning
    each kind. ``content``: the file's FITS bytes (the id of a file without OBSID)."""
    row: dict = {}
    for key, (col, kind) in REQUIRED_KEYS.items():
        if hdr.get(key) is None or str(hdr.get(key)).strip() == "":
            raise BadSpectrum(f"missing required header key {key}")
        row[col] = _convert(hdr[key], kind, key, strict=True, warnings=warnings)
        if kind == "float" and row[col] in SENTINELS_ANY:
            raise BadSpectrum(f"header key {key} = {row[col]:g} is a no-value sentinel "
                              "(required key)")
    labels = {"z": "header key Z", "z_err": "header key Z_ERR", "rv_kms": "header key RV"}
    missing: list[str] = []
    for key, (col, kind) in OPTIONAL_KEYS.items():
        row[col] = _opt(hdr, key, kind, missing, warnings)
    for b in BANDS:
        # DR1/DR2 write SN_U..SN_Z, later releases SNRU..SNRZ (named when both are missing)
        key = f"SN_{b.upper()}" if f"SN_{b.upper()}" in hdr else f"SNR{b.upper()}"
        row[f"snr_{b}"] = _opt(hdr, key, "float", missing, warnings)
        labels[f"snr_{b}"] = f"header key {key}"
    if missing:
        warnings.append(f"header key(s) missing, stored as NULL: {', '.join(missing)}")
    row["rv_kms"] = _opt(hdr, "RV", "float", [], warnings)
    null_sentinels(row, labels, warnings)
    fill_rv(row, "header")
    obsid = _opt(hdr, "OBSID", "int", [], warnings)
    if obsid is None:
        obsid, how = derive_obsid(row, content)
        warnings.append(how)
    row["obsid"] = obsid
    data_v = _opt(hdr, "DATA_V", "str", [], warnings)
    verspipe = _opt(hdr, "VERSPIPE", "str", [], warnings)
    row["data_v"] = data_v or (f"LAMOST pipeline v{verspipe.lstrip('vV')}" if verspipe else "unknown")
    row["is_star"] = str(row["class"]).upper() == "STAR"
    return row


# --- FITS structure ------------------------------------------------------------------

def _header_at(data: bytes, offset: int, what: str) -> tuple[Header, int]:
    pos = offset
    while True:
        if pos + BLOCK > len(data):
            raise BadSpectrum(f"truncated FITS: {what} header has no END card")
        block = data[pos:pos + BLOCK]
        pos += BLOCK
        at = block.find(END_CARD)
        while at != -1 and at % CARD:
            at = block.find(END_CARD, at + 1)
        if at != -1:
            break
    return parse_cards(data[offset:pos]), pos


def parse_cards(raw: bytes, wanted: frozenset[str] | None = None) -> Header:
    """FITS header cards -> {KEY: value}; str / bool / int / float, None when undefined.

    Only ``wanted`` keys (default ``WANTED_KEYS``, the ones this module reads) are
    parsed: value parsing is most of the cost. The first occurrence of a key wins
    (as in astropy).
    """
    padded = _WANTED_PADDED if wanted is None else frozenset(k.ljust(8) for k in wanted)
    text = raw.decode("ascii", "replace")
    out: Header = {}
    for at in range(0, len(text), CARD):
        field = text[at:at + 8]
        if field == "END     ":
            break
        if (field in padded or field.startswith(("NAXIS", "TFORM", "TTYPE"))) \
                and text[at + 8:at + 10] == "= ":
            key = field.rstrip()
            if key not in out:
                out[key] = _card_value(text[at + 10:at + CARD])
    return out


def _card_value(field: str):
    field = field.lstrip()
    if field.startswith("'"):
        # a quote inside a string is written as two quotes
        chars, i = [], 1
        while i < len(field):
            if field[i] == "'":
                if field[i + 1:i + 2] == "'":
                    chars.append("'")
                    i += 2
                    continue
                break
            chars.append(field[i])
            i += 1
        return "".join(chars).rstrip()
    token = field.split("/", 1)[0].strip()
    if token in ("T", "F"):
        return token == "T"
    if not token:
        return None
    try:
        return int(token)
    except ValueError:
        pass
    try:
        return float(token.replace("D", "E"))
    except ValueError:
        return token  # kept verbatim; typed readers reject it by key name


def _data_size(hdr: Header, what: str) -> int:
    bitpix = _int_key(hdr, "BITPIX", what)
    naxis = _int_key(hdr, "NAXIS", what)
    if naxis == 0:
        return 0
    size = abs(bitpix) // 8
    for k in range(1, naxis + 1):
        size *= _int_key(hdr, f"NAXIS{k}", what)
    return size + int(hdr.get("PCOUNT", 0) or 0)


def _image(data: bytes, hdr: Header, at: int) -> np.ndarray:
    bitpix = _int_key(hdr, "BITPIX", "primary")
    if bitpix not in _DTYPES:
        raise BadSpectrum(f"unsupported BITPIX {bitpix}")
    n1, n2 = _int_key(hdr, "NAXIS1", "primary"), _int_key(hdr, "NAXIS2", "primary")
    need = _data_size(hdr, "primary")
    if at + need > len(data):
        raise BadSpectrum(f"truncated FITS: image needs {need} bytes, file has {len(data) - at}")
    img = np.frombuffer(data, dtype=_DTYPES[bitpix], count=n1 * n2, offset=at).reshape(n2, n1)
    scale, zero = hdr.get("BSCALE", 1), hdr.get("BZERO", 0)
    return img * scale + zero if (scale != 1 or zero != 0) else img


def _coadd_arrays(data: bytes, at: int) -> dict[str, np.ndarray | None]:
    """Columns of the first row of the first extension (must be COADD, not COADD_B/_R)."""
    if at >= len(data):
        raise BadSpectrum("empty primary HDU and no extension (expected a COADD table)")
    hdr, data_at = _header_at(data, at, "extension")
    extname = str(hdr.get("EXTNAME", "")).strip().upper()
    if extname in ("COADD_B", "COADD_R"):
        raise BadSpectrum("medium-resolution (MRS) file refused: mgold ingests low-resolution "
                          "spectra only")
    if hdr.get("XTENSION", "").strip() != "BINTABLE" or extname != "COADD":
        raise BadSpectrum(f"unsupported layout: first extension is {extname or 'unnamed'}, "
                          "expected a COADD binary table")
    width, nrows = _int_key(hdr, "NAXIS1", "COADD"), _int_key(hdr, "NAXIS2", "COADD")
    if nrows < 1:
        raise BadSpectrum("COADD table has no rows")
    if data_at + width > len(data):
        raise BadSpectrum(f"truncated FITS: COADD row needs {width} bytes, "
                          f"file has {len(data) - data_at}")
    cols: dict[str, np.ndarray | None] = {"ANDMASK": None, "ORMASK": None}
    offset = data_at
    for k in range(1, _int_key(hdr, "TFIELDS", "COADD") + 1):
        tform = str(hdr.get(f"TFORM{k}", "")).strip()
        digits = tform.rstrip("ABCDEIJKLMPQX")
        code = tform[len(digits):][:1]
        if code not in _TFORM:
            raise BadSpectrum(f"unsupported COADD column format {tform!r}")
        repeat = int(digits) if digits else 1
        nbytes, dtype = _TFORM[code]
        name = str(hdr.get(f"TTYPE{k}", "")).strip().upper()
        if name in ("FLUX", "IVAR", "WAVELENGTH", "ANDMASK", "ORMASK"):
            cols[name] = np.frombuffer(data, dtype=dtype, count=repeat, offset=offset)
        offset += nbytes * repeat
    for need in ("FLUX", "IVAR", "WAVELENGTH"):
        if need not in cols:
            raise BadSpectrum(f"COADD table has no {need} column")
    return cols


# --- header values --------------------------------------------------------------------

def _convert(value, kind: str, key: str, strict: bool, warnings: list[str]):
    try:
        if kind == "str":
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise ValueError
            return str(value).strip()
        if isinstance(value, bool):
            raise ValueError
        out = float(value) if kind == "float" else int(str(value).strip())
        if strict and kind == "float" and not np.isfinite(out):
            raise ValueError
        return out   # a non-finite optional float is NULLed by null_sentinels, with its warning
    except (TypeError, ValueError):
        msg = f"header key {key}: expected {kind}, got {value!r}"
        if strict:
            raise BadSpectrum(msg) from None
        warnings.append(msg + " (stored as NULL)")
        return None


def _opt(hdr: Header, key: str, kind: str, missing: list[str], warnings: list[str]):
    value = hdr.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        missing.append(key)
        return None
    return _convert(value, kind, key, strict=False, warnings=warnings)


def _opt_float(hdr: Header, key: str) -> float | None:
    value = hdr.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _float_key(hdr: Header, key: str) -> float:
    value = _opt_float(hdr, key)
    if value is None:
        raise BadSpectrum(f"missing or non-numeric header key {key} (needed for the wavelength grid)")
    return value


def _int_key(hdr: Header, key: str, what: str) -> int:
    value = hdr.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadSpectrum(f"{what} header: missing or non-integer {key}")
    return value
