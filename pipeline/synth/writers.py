"""Writers of the synthetic universe in the real formats, deterministically.

Parquet (no timestamps), CSV (pyarrow, fixed float formatting) and FITS (astropy,
no DATE / CHECKSUM cards) so the same seed and preset give byte-identical files.
LAMOST spectra go either to Parquet batches (one row per spectrum, lists of
flux/ivar/pixmask, typed and encoded exactly as ingest writes its landing parts:
``lamost.SPECTRA_SCHEMA`` / ``PARQUET_OPTIONS``, plus the header columns) or to one
DR9+/DR13-layout FITS file per spectrum (empty primary HDU with the header keys,
1-row BINTABLE ``COADD``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from astropy.io import fits

from mgold.pipeline.ingest.lamost import PARQUET_OPTIONS, SPECTRA_SCHEMA
from mgold.pipeline.synth.spectra_model import DLOGLAM, LOGLAM0, N_PIX

# header columns of a spectra Parquet row, in order (then loglam0, dloglam, flux, ivar, pixmask)
SPECTRA_HEADER = ("obsid", "designation", "ra_deg", "dec_deg", "class", "subclass", "z", "z_err",
                  "rv_kms", "snr_u", "snr_g", "snr_r", "snr_i", "snr_z", "lmjd", "mjd", "planid",
                  "spid", "fiberid", "data_v")
# FITS primary keyword of each header column
FITS_KEYS = {"obsid": "OBSID", "designation": "DESIG", "ra_deg": "RA", "dec_deg": "DEC", "class": "CLASS",
             "subclass": "SUBCLASS", "z": "Z", "z_err": "Z_ERR", "snr_u": "SNRU", "snr_g": "SNRG",
             "snr_r": "SNRR", "snr_i": "SNRI", "snr_z": "SNRZ", "lmjd": "LMJD", "mjd": "MJD",
             "planid": "PLANID", "spid": "SPID", "fiberid": "FIBERID", "data_v": "DATA_V"}


def _column(values) -> pa.Array:
    if isinstance(values, pa.Array):
        return values
    if isinstance(values, np.ma.MaskedArray):
        return pa.array(np.asarray(values.data), mask=np.ma.getmaskarray(values))
    arr = np.asarray(values)
    if arr.ndim == 2:
        flat = pa.array(arr.reshape(-1))
        offsets = pa.array(np.arange(arr.shape[0] + 1, dtype=np.int32) * arr.shape[1])
        return pa.ListArray.from_arrays(offsets, flat)
    if arr.dtype.kind == "U":
        return pa.array(arr.tolist(), type=pa.string())
    return pa.array(arr)


def to_arrow(cols: dict) -> pa.Table:
    """``{name: numpy array}`` -> Arrow table (masked -> null, 2-D -> list column)."""
    return pa.table({k: _column(v) for k, v in cols.items()})


def write_parquet(table: pa.Table, path: Path) -> None:
    """A catalogue or truth table: zstd-1, strings dictionary-encoded."""
    path.parent.mkdir(parents=True, exist_ok=True)
    strings = [f.name for f in table.schema if pa.types.is_string(f.type)]
    pq.write_table(table, path, compression="zstd", compression_level=1, use_dictionary=strings,
                   write_statistics=True)


def write_spectra_parquet(table: pa.Table, path: Path, row_group_size: int,
                          compression: str = PARQUET_OPTIONS["compression"]) -> None:
    """A spectra table in the landing layout: the ingest writer's options (``lamost.PARQUET_OPTIONS``)
    and row groups, so with the default codec its spectra columns are encoded exactly as ingest
    writes them; another codec changes only the compression."""
    options = dict(PARQUET_OPTIONS)
    if compression != options["compression"]:
        options.update(compression=compression, compression_level=None)
    path.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(path, table.schema, **options) as writer:
        writer.write_table(table, row_group_size=row_group_size)


def write_csv(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pacsv.write_csv(table, path)


def write_fits_table(cols: dict, path: Path, extname: str = "") -> None:
    """A FITS binary table (one HDU after an empty primary), no time-dependent cards."""
    fcols = []
    for name, values in cols.items():
        if isinstance(values, np.ma.MaskedArray):
            raise ValueError(f"{path.name}: column {name} has missing values; FITS writer expects none")
        arr = np.asarray(values)
        if arr.dtype.kind == "U":
            width = max(1, max((len(s) for s in arr), default=1))
            fcols.append(fits.Column(name=name, format=f"{width}A", array=arr.astype(f"S{width}")))
        elif arr.dtype.kind in "iu":
            fcols.append(fits.Column(name=name, format="K", array=arr.astype(np.int64)))
        elif arr.dtype == np.float32:
            fcols.append(fits.Column(name=name, format="E", array=arr))
        else:
            fcols.append(fits.Column(name=name, format="D", array=arr.astype(np.float64)))
    hdu = fits.BinTableHDU.from_columns(fcols, name=extname or None)
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path, overwrite=True)


def spectra_table(header: dict, flux: np.ndarray, ivar: np.ndarray, pixmask: np.ndarray) -> pa.Table:
    """One Arrow row per spectrum: header columns, loglam0, dloglam, flux, ivar, pixmask (the
    last five and obsid typed as ``lamost.SPECTRA_SCHEMA``)."""
    n = flux.shape[0]
    cols = {k: header[k] for k in SPECTRA_HEADER}
    cols["loglam0"] = np.full(n, LOGLAM0)
    cols["dloglam"] = np.full(n, DLOGLAM)
    cols["flux"] = flux.astype(np.float32, copy=False)
    cols["ivar"] = ivar.astype(np.float32, copy=False)
    cols["pixmask"] = pixmask
    table = to_arrow(cols)
    # the spectra columns typed exactly as the landing table's (SPECTRA_SCHEMA)
    return pa.Table.from_arrays([table.column(f.name).cast(SPECTRA_SCHEMA.field(f.name).type)
                                 if f.name in SPECTRA_SCHEMA.names else table.column(f.name)
                                 for f in table.schema], names=table.column_names)


def spectrum_fits_name(lmjd: int, planid: str, spid: int, fiberid: int) -> str:
    """LAMOST file name ``spec-LMJD-PLANID_spSS-FFF.fits``."""
    return f"spec-{lmjd}-{planid}_sp{spid:02d}-{fiberid:03d}.fits"


def write_spectrum_fits(path: Path, header: dict, flux: np.ndarray, ivar: np.ndarray,
                        pixmask: np.ndarray) -> None:
    """One DR9+/DR13-layout file: empty primary with the header keys + BINTABLE ``COADD``."""
    prim = fits.PrimaryHDU()
    h = prim.header
    for col, key in FITS_KEYS.items():
        value = header[col]
        h[key] = value.item() if isinstance(value, np.generic) else value
    h["VACUUM"] = (True, "Wavelengths are in vacuum")
    h["NWORDER"] = 2
    h["WFITTYPE"] = "LOG-LINEAR"
    h["COEFF0"] = (LOGLAM0, "Central wavelength (log10) of first pixel")
    h["COEFF1"] = (DLOGLAM, "Log10 dispersion per pixel")
    h["NORM"] = (0, "1 if there exists a normalized spectrum")
    wave = (10.0 ** (LOGLAM0 + DLOGLAM * np.arange(N_PIX))).astype(np.float32)
    mask = pixmask.astype(np.float32)
    fmt = f"{N_PIX}E"
    cols = [fits.Column(name=name, format=fmt, array=arr[None, :].astype(np.float32))
            for name, arr in (("FLUX", flux), ("IVAR", ivar), ("WAVELENGTH", wave), ("ANDMASK", mask),
                              ("ORMASK", mask), ("NORMALIZATION", np.full(N_PIX, -9999.0)))]
    coadd = fits.BinTableHDU.from_columns(cols, name="COADD")
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.HDUList([prim, coadd]).writeto(path, overwrite=True)
