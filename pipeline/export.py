"""The published golden-sample product (paper §3.2) as FITS and Parquet: pure writers and readers.

No connection is opened here: ``golden_from_warehouse(con, grid)`` reads ``gold_sample`` and its
spectra through the connection the caller (``mgold export golden``) opened, and the writers take
numpy arrays and a pyarrow catalogue.

Which spectra: by default the clustering grid (``spc_cluster_grid``, 3900-8800 AA), the range the
paper's product and its Figs 11-13 show (rest frame, SED-recalibrated, the blue TiO bands
included); ``grid='red'`` gives the 6000-8800 AA red grid (``spc_red_grid``) that LASPM and the
neural net use, divided by the same polynomial.

The paper's product
-------------------
The paper published ``golden_sample_M_stars.zip`` (China-VO Paper Data Repository): one FITS
file, "the 5105 spectra ... housed within the first Header Data Unit (HDU)", "well-calibrated
fluxes and wavelengths in the rest frame", plus the stellar parameter catalogue. mgold writes
the same layout, so a user of the paper's file finds the spectra where they expect them:

``PRIMARY``     float32 image, NAXIS1 = n_pixels, NAXIS2 = n_stars (numpy shape (n_stars,
                n_pixels)): row i is the recalibrated rest-frame flux of catalogue row i.
                Wavelength WCS as LAMOST (and SDSS) write it: CRVAL1 = log10 of the vacuum
                wavelength (Angstrom) of the first pixel, CDELT1 = log10 step per pixel,
                CRPIX1 = 1, CTYPE1 = 'LINEAR', DC-FLAG = 1 (the IRAF flag that the axis is
                log10 lambda, so lambda_i = 10 ** (CRVAL1 + CDELT1 * (i + 1 - CRPIX1))), plus
                COEFF0 / COEFF1 (the SDSS names of the same two numbers), VACUUM = T and
                RESTFRM = T. LAMOST spectra write the step as CD1_1; CDELT1 is used here
                because astropy.wcs refuses to mix the two and the axis carries no rotation.
``IVAR``        float32 image of the same shape, the inverse variance of each pixel (0 = bad
                pixel, the warehouse convention), same WCS cards.
``WAVELENGTH``  float64 vector of n_pixels vacuum rest-frame wavelengths in Angstrom, for
                readers that do not evaluate the WCS.
``CATALOG``     BINTABLE, one row per spectrum in image-row order, TUNITn from ``units``.

Every HDU carries CHECKSUM / DATASUM (astropy ``checksum=True``); ``read_golden_fits`` refuses a
file whose checksums fail. Files are written to a temporary name and renamed, so a failed
export never leaves half a product behind.

Catalogue types in FITS, and what NULL becomes
----------------------------------------------
=====================  =====================  ===============================================
Arrow                   FITS TFORM             NULL
=====================  =====================  ===============================================
int16 / int32 / int64   I / J / K              TNULLn = the type's minimum (a non-NULL value
                                               equal to it is refused)
float32 / float64       E / D                  NaN (read back as NULL: a NaN comes back NULL)
string                  nA (n = longest)       '' (read back as NULL: '' comes back NULL);
                                               ASCII only, trailing blanks refused (FITS drops
                                               them)
bool                    L                      refused (astropy reads a FITS null as False):
                                               cast to int16 to keep NULLs
fixed_size_list<float>  nE / nD + TDIMn        NULL list -> all NaN (an all-NaN list comes
                                               back NULL); NULL items -> NaN
fixed_size_list<int>    nI / nJ / nK + TDIMn   refused
=====================  =====================  ===============================================

Other types (int8, unsigned, timestamps, dictionaries, variable lists) are refused with a
one-line error naming the column: cast them in the query. Column names must be unique
ignoring case (FITS column names are case-insensitive).

Parquet
-------
``write_golden_parquet`` writes the same content as one table: the catalogue columns (NULLs
native) and ``flux`` / ``ivar`` as ``fixed_size_list<float32>[n_pixels]`` columns; the schema
metadata holds ``mgold.loglam0`` / ``mgold.dloglam`` (repr of the float64, exact),
``mgold.wavelength`` (the convention, in words), ``mgold.units`` (JSON) and ``mgold.flux_unit``;
each catalogue field also carries its unit as field metadata ``unit``.

Both readers return a ``GoldenProduct`` equal to what was written (floats bit-identical).
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

WAVELENGTH_CONVENTION = ("log10(vacuum wavelength / Angstrom) of pixel i (0-based) = loglam0 + i * dloglam; "
                         "rest frame")
SPECTRA_COLUMNS = ("flux", "ivar")
HDU_NAMES = ("PRIMARY", "IVAR", "WAVELENGTH", "CATALOG")

_INT_FORMS = {pa.int16(): ("I", np.int16), pa.int32(): ("J", np.int32), pa.int64(): ("K", np.int64)}
_FLOAT_FORMS = {pa.float32(): ("E", np.float32), pa.float64(): ("D", np.float64)}
_FORM_TYPES = {"I": pa.int16(), "J": pa.int32(), "K": pa.int64(), "E": pa.float32(), "D": pa.float64(),
               "L": pa.bool_(), "A": pa.string()}


@dataclass(frozen=True)
class GoldenProduct:
    """The golden sample as written and read: spectra on one log-linear rest-frame grid and the
    catalogue (row i of ``catalog`` is row i of ``flux`` / ``ivar``)."""

    flux: np.ndarray              # (n_stars, n_pixels) float32
    ivar: np.ndarray              # (n_stars, n_pixels) float32, 0 = bad pixel
    loglam0: float                # log10(vacuum wavelength / AA) of pixel 0
    dloglam: float                # log10 step per pixel
    catalog: pa.Table
    units: dict[str, str] = field(default_factory=dict)   # catalogue column -> unit
    flux_unit: str | None = None

    @property
    def wavelength_aa(self) -> np.ndarray:
        """Vacuum rest-frame wavelength of each pixel (Angstrom)."""
        return wavelength_aa(self.loglam0, self.dloglam, self.flux.shape[1])


def wavelength_aa(loglam0: float, dloglam: float, n_pixels: int) -> np.ndarray:
    return 10.0 ** (float(loglam0) + float(dloglam) * np.arange(n_pixels))


def write_golden_fits(path, flux, ivar, loglam0: float, dloglam: float, catalog: pa.Table,
                      units: dict[str, str], flux_unit: str | None = None, header: dict | None = None,
                      overwrite: bool = False) -> Path:
    """Write the FITS product (module docstring) to ``path``; ``header``: extra PRIMARY cards
    (keyword -> value or (value, comment)), e.g. the run id. Returns the path."""
    from astropy.io import fits

    flux, ivar, units = _check_product(flux, ivar, loglam0, dloglam, catalog, units)
    path = _target(path, overwrite)
    primary = fits.PrimaryHDU(flux)
    _wcs_cards(primary.header, float(loglam0), float(dloglam), flux.shape)
    primary.header["ORIGIN"] = ("mgold", "LAMOST M-star golden sample (Du, Luo et al.)")
    if flux_unit:
        primary.header["BUNIT"] = (flux_unit, "recalibrated flux")
    for key, value in (header or {}).items():
        primary.header[key] = value
    ivar_hdu = fits.ImageHDU(ivar, name="IVAR")
    _wcs_cards(ivar_hdu.header, float(loglam0), float(dloglam), ivar.shape)
    if flux_unit:
        ivar_hdu.header["BUNIT"] = (f"({flux_unit})**-2", "inverse variance of the flux")
    wave = fits.ImageHDU(wavelength_aa(loglam0, dloglam, flux.shape[1]), name="WAVELENGTH")
    wave.header["BUNIT"] = ("Angstrom", "vacuum wavelength, rest frame")
    cat = fits.BinTableHDU.from_columns(_fits_columns(catalog, units), name="CATALOG", nrows=catalog.num_rows)
    hdul = fits.HDUList([primary, ivar_hdu, wave, cat])
    _write_atomically(path, lambda tmp: hdul.writeto(tmp, checksum=True))
    return path


def read_golden_fits(path) -> GoldenProduct:
    """Read a product written by ``write_golden_fits`` (checksums verified) -> GoldenProduct."""
    from astropy.io import fits

    path = Path(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hdul = fits.open(path, checksum=True, memmap=False)
    failed = [str(w.message) for w in caught if "checksum" in str(w.message).lower()]
    if failed:
        hdul.close()
        raise ValueError(f"{path}: {failed[0]}")
    with hdul:
        names = [h.name for h in hdul]
        missing = [n for n in HDU_NAMES if n not in names]
        if missing:
            raise ValueError(f"{path}: not a golden-sample product: no HDU {', '.join(missing)}")
        h = hdul[0].header
        if h.get("DC-FLAG") != 1 or "CRVAL1" not in h or "CDELT1" not in h:
            raise ValueError(f"{path}: PRIMARY header lacks the log-linear wavelength WCS (CRVAL1, CDELT1, DC-FLAG = 1)")
        flux = _native(hdul[0].data, np.float32)
        ivar = _native(hdul["IVAR"].data, np.float32)
        catalog, units = _arrow_catalog(hdul["CATALOG"], path)
        return GoldenProduct(flux, ivar, float(h["CRVAL1"]), float(h["CDELT1"]), catalog, units,
                             h.get("BUNIT"))


def write_golden_parquet(path, flux, ivar, loglam0: float, dloglam: float, catalog: pa.Table,
                         units: dict[str, str], flux_unit: str | None = None, overwrite: bool = False,
                         row_group_rows: int = 2000) -> Path:
    """Write the Parquet product (module docstring) to ``path``. Returns the path."""
    flux, ivar, units = _check_product(flux, ivar, loglam0, dloglam, catalog, units)
    clash = [c for c in catalog.column_names if c in SPECTRA_COLUMNS]
    if clash:
        raise ValueError(f"catalogue column {clash[0]!r} clashes with the spectra column of that name")
    path = _target(path, overwrite)
    n = flux.shape[1]
    fields = [f.with_metadata({"unit": units[f.name]}) if f.name in units else f for f in catalog.schema]
    fields += [pa.field(c, pa.list_(pa.float32(), n)) for c in SPECTRA_COLUMNS]
    meta = {"mgold.product": "golden_sample", "mgold.loglam0": repr(float(loglam0)),
            "mgold.dloglam": repr(float(dloglam)), "mgold.wavelength": WAVELENGTH_CONVENTION,
            "mgold.units": json.dumps(units, sort_keys=True), "mgold.flux_unit": flux_unit or ""}
    table = pa.Table.from_arrays(
        list(catalog.columns) + [pa.FixedSizeListArray.from_arrays(pa.array(a.reshape(-1)), n) for a in (flux, ivar)],
        schema=pa.schema(fields, metadata=meta))
    _write_atomically(path, lambda tmp: pq.write_table(table, tmp, row_group_size=row_group_rows))
    return path


def read_golden_parquet(path) -> GoldenProduct:
    """Read a product written by ``write_golden_parquet`` -> GoldenProduct."""
    path = Path(path)
    table = pq.read_table(path)
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    missing = [c for c in SPECTRA_COLUMNS if c not in table.column_names]
    missing += [k for k in ("mgold.loglam0", "mgold.dloglam") if k not in meta]
    if missing:
        raise ValueError(f"{path}: not a golden-sample product: no {', '.join(missing)}")
    spectra = []
    for c in SPECTRA_COLUMNS:
        col = table.column(c).combine_chunks()
        n = col.type.list_size
        spectra.append(col.values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, n))
    cat = table.drop(list(SPECTRA_COLUMNS))
    cat = pa.Table.from_arrays(cat.columns, schema=pa.schema([f.remove_metadata() for f in cat.schema]))
    return GoldenProduct(spectra[0], spectra[1], float(meta["mgold.loglam0"]), float(meta["mgold.dloglam"]),
                         cat, json.loads(meta.get("mgold.units", "{}")), meta.get("mgold.flux_unit") or None)


# --- the golden sample of a warehouse --------------------------------------------------------

GRIDS = {"cluster": "spc_cluster_grid", "red": "spc_red_grid"}
FLUX_UNIT = "relative"               # flux / the recalibration polynomial: the model-SED scale, arbitrary
UNIT_SUFFIXES = (("_k", "K"), ("_dex", "dex"), ("_deg", "deg"), ("_kms", "km/s"), ("_steps", "bin steps"))


def column_units(names) -> dict[str, str]:
    """Units read from the names (the house rule: units in names): teff_k -> K, ra_deg -> deg, ..."""
    out = {}
    for n in names:
        for suffix, unit in UNIT_SUFFIXES:
            if n.endswith(suffix):
                out[n] = unit
                break
    return out


def golden_from_warehouse(con, grid: str = "cluster") -> GoldenProduct:
    """The golden sample of the warehouse behind ``con``: ``gold_sample`` in obsid order with its spectra
    on ``grid`` ('cluster' or 'red', ``GRIDS``). Raises ValueError naming what is missing."""
    if grid not in GRIDS:
        raise ValueError(f"unknown grid {grid!r}; choices: {', '.join(GRIDS)}")
    rel = GRIDS[grid]
    have = {r[0] for r in con.execute("select table_name from information_schema.tables "
                                      "where table_schema = 'main'").fetchall()}
    missing = [t for t in ("gold_sample", rel) if t not in have]
    if missing:
        raise ValueError(f"{', '.join(missing)} missing: build the golden layer first (mgold build)")
    catalog = con.sql("select * from gold_sample order by obsid").to_arrow_table()
    if catalog.num_rows == 0:
        raise ValueError("gold_sample is empty: nothing to export")
    spectra = con.sql(f"select g.obsid, s.loglam0, s.dloglam, s.flux, s.ivar from gold_sample g "
                      f"left join {rel} s using (obsid) order by g.obsid").to_arrow_table()
    lost = [o for o, f in zip(spectra["obsid"].to_pylist(), spectra["flux"].is_null().to_pylist()) if f]
    if lost:
        raise ValueError(f"golden spectrum obsid {lost[0]} has no row in {rel} ({len(lost)} in all): rebuild")
    loglam0 = set(spectra["loglam0"].to_pylist())
    dloglam = set(spectra["dloglam"].to_pylist())
    if len(loglam0) != 1 or len(dloglam) != 1:
        raise ValueError(f"{rel} holds spectra on more than one grid: rebuild the spectra layer")
    n = spectra["flux"].type.list_size

    def matrix(c: str) -> np.ndarray:
        return spectra[c].combine_chunks().flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, n)

    return GoldenProduct(matrix("flux"), matrix("ivar"), loglam0.pop(), dloglam.pop(), catalog,
                         column_units(catalog.column_names), FLUX_UNIT)


# --- shared checks and helpers ----------------------------------------------------------------

def _check_product(flux, ivar, loglam0, dloglam, catalog: pa.Table,
                   units: dict) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """Refuse what the product cannot hold; -> contiguous flux, ivar and the non-empty units."""
    flux, ivar = np.asarray(flux), np.asarray(ivar)
    for name, a in (("flux", flux), ("ivar", ivar)):
        if a.ndim != 2:
            raise ValueError(f"{name} must be a 2-D (stars, pixels) array, got shape {a.shape}")
        if a.dtype != np.float32:
            raise ValueError(f"{name} must be float32 (the warehouse spectra type), got {a.dtype}")
    if flux.shape != ivar.shape:
        raise ValueError(f"flux shape {flux.shape} differs from ivar shape {ivar.shape}")
    if catalog.num_columns == 0:
        raise ValueError("catalogue has no columns: at least the obsid of each spectrum is needed")
    if catalog.num_rows != flux.shape[0]:
        raise ValueError(f"catalogue has {catalog.num_rows} rows for {flux.shape[0]} spectra: one row per spectrum")
    if not (np.isfinite(loglam0) and np.isfinite(dloglam) and dloglam > 0):
        raise ValueError(f"wavelength grid needs finite loglam0 and dloglam > 0, got {loglam0}, {dloglam}")
    unknown = sorted(set(units) - set(catalog.column_names))
    if unknown:
        raise ValueError(f"units given for column(s) not in the catalogue: {', '.join(unknown)}")
    lower = [c.lower() for c in catalog.column_names]
    dup = sorted({c for c in lower if lower.count(c) > 1})
    if dup:
        raise ValueError(f"catalogue column names must differ ignoring case (FITS): {dup[0]!r} repeats")
    return np.ascontiguousarray(flux), np.ascontiguousarray(ivar), {k: str(v) for k, v in units.items() if v}


def _target(path, overwrite: bool) -> Path:
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists (pass overwrite to replace it)")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent}: no such directory")
    return path


def _write_atomically(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)                       # the writers refuse to overwrite an existing file
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _wcs_cards(h, loglam0: float, dloglam: float, shape: tuple[int, int]) -> None:
    h["CRVAL1"] = (loglam0, "log10(vacuum wavelength / AA), pixel 1")
    h["CDELT1"] = (dloglam, "log10 wavelength step per pixel")
    h["CRPIX1"] = (1, "reference pixel (1-indexed)")
    h["CTYPE1"] = ("LINEAR", "world coordinate is log10 lambda (DC-FLAG)")
    h["DC-FLAG"] = (1, "log-linear wavelength axis (IRAF / LAMOST)")
    h["COEFF0"] = (loglam0, "SDSS convention: log10 lambda of pixel 0")
    h["COEFF1"] = (dloglam, "SDSS convention: log10 lambda step")
    h["VACUUM"] = (True, "wavelengths are in vacuum")
    h["RESTFRM"] = (True, "wavelengths are in the stellar rest frame")
    h["NPIX"] = (shape[1], "pixels per spectrum (axis 1)")
    h["NSTARS"] = (shape[0], "spectra (axis 2) = rows of the CATALOG HDU")


def _fits_columns(catalog: pa.Table, units: dict[str, str]) -> list:
    from astropy.io import fits

    cols = []
    for name, col in zip(catalog.column_names, catalog.columns):
        arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
        t = arr.type
        where = f"catalogue column {name!r}"
        kw: dict = {"name": name, "unit": units.get(name)}
        null = arr.is_null().to_numpy(zero_copy_only=False)
        if t in _INT_FORMS:
            form, dtype = _INT_FORMS[t]
            sentinel = np.iinfo(dtype).min
            values = arr.fill_null(0).to_numpy().astype(dtype)
            hit = np.flatnonzero(~null & (values == sentinel))
            if hit.size:
                raise ValueError(f"{where} row {hit[0]}: value {sentinel} is the FITS NULL marker (TNULL) of {t}")
            kw.update(format=form, null=int(sentinel), array=np.where(null, sentinel, values).astype(dtype))
        elif t in _FLOAT_FORMS:
            form, dtype = _FLOAT_FORMS[t]
            kw.update(format=form, array=np.where(null, np.nan, arr.to_numpy(zero_copy_only=False)).astype(dtype))
        elif t == pa.bool_():
            if null.any():
                raise ValueError(f"{where} row {np.flatnonzero(null)[0]}: NULL in a bool column cannot be written "
                                 f"to FITS (cast the column to int16)")
            kw.update(format="L", array=arr.to_numpy(zero_copy_only=False))
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            values = ["" if v is None else v for v in arr.to_pylist()]
            for i, v in enumerate(values):
                if not v.isascii():
                    raise ValueError(f"{where} row {i}: non-ASCII text {v!r} (FITS strings are ASCII)")
                if v != v.rstrip(" "):
                    raise ValueError(f"{where} row {i}: trailing blanks in {v!r} (FITS drops them)")
            width = max([len(v) for v in values] + [1])
            kw.update(format=f"{width}A", array=np.array(values, dtype=f"S{width}"))
        elif pa.types.is_fixed_size_list(t) and (t.value_type in _FLOAT_FORMS or t.value_type in _INT_FORMS):
            n = t.list_size
            is_float = t.value_type in _FLOAT_FORMS
            form, dtype = (_FLOAT_FORMS if is_float else _INT_FORMS)[t.value_type]
            items = arr.flatten()
            if not is_float and (null.any() or items.null_count):
                raise ValueError(f"{where}: NULL in an integer list column cannot be written to FITS")
            values = np.full((len(arr), n), np.nan if is_float else 0, dtype=dtype)
            if is_float:
                flat = np.where(items.is_null().to_numpy(zero_copy_only=False), np.nan,
                                items.to_numpy(zero_copy_only=False)).astype(dtype)
            else:
                flat = items.to_numpy(zero_copy_only=False).astype(dtype)
            values[~null] = flat.reshape(-1, n)
            kw.update(format=f"{n}{form}", dim=f"({n})", array=values)
        else:
            raise ValueError(f"{where} has type {t}, which the FITS product does not carry (cast it in the query: "
                             f"int16/32/64, float32/64, string, bool, fixed-size lists of numbers)")
        cols.append(fits.Column(**kw))
    return cols


def _native(a: np.ndarray, dtype) -> np.ndarray:
    """FITS data (big-endian) -> a native-endian copy of the same bits."""
    return np.ascontiguousarray(a).astype(np.dtype(dtype).newbyteorder("="), copy=True)


def _arrow_catalog(hdu, path: Path) -> tuple[pa.Table, dict[str, str]]:
    """The CATALOG BINTABLE -> (pyarrow table with the writer's types and NULLs, units)."""
    arrays, names, units = [], [], {}
    data = hdu.data
    for i, col in enumerate(hdu.columns, start=1):
        form = col.format
        code = form.lstrip("0123456789")
        repeat = int(form[: len(form) - len(code)] or 1)
        if code not in _FORM_TYPES:
            raise ValueError(f"{path}: CATALOG column {col.name!r} has TFORM {form}, not one the product writes")
        values = data[col.name]
        t = _FORM_TYPES[code]
        if code == "A":
            text = [v.decode("ascii") if isinstance(v, bytes) else str(v) for v in values]
            arr = pa.array([v if v != "" else None for v in text], pa.string())
        elif col.dim is not None:
            flat = _native(np.asarray(values).reshape(len(values), repeat), t.to_pandas_dtype())
            items = pa.array(flat.reshape(-1), t, from_pandas=False)
            fl = pa.FixedSizeListArray.from_arrays(items, repeat)
            if pa.types.is_floating(t):
                none = np.isnan(flat).all(axis=1) if repeat else np.zeros(len(flat), bool)
                fl = pa.FixedSizeListArray.from_arrays(items, repeat, mask=pa.array(none)) if none.any() else fl
            arr = fl
        else:
            v = _native(np.asarray(values), t.to_pandas_dtype())
            if pa.types.is_integer(t):
                mask = (v == col.null) if col.null is not None else None
                arr = pa.array(v, t, mask=mask)
            elif pa.types.is_floating(t):
                arr = pa.array(v, t, mask=np.isnan(v))
            else:
                arr = pa.array(v, t)
        arrays.append(arr)
        names.append(col.name)
        if col.unit:
            units[col.name] = col.unit
    return pa.table(dict(zip(names, arrays))) if names else pa.table({}), units
