"""The slow, obvious twin of xm_gaia_pairs: numpy epoch propagation + astropy search_around_sky."""

from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord


def propagate(ra_deg, dec_deg, pmra_masyr, pmdec_masyr, dt_yr):
    """Linear motion on the tangent plane, back onto the sphere (the model's convention)."""
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    du = np.radians(np.asarray(pmra_masyr) * dt_yr / 3.6e6)
    dv = np.radians(np.asarray(pmdec_masyr) * dt_yr / 3.6e6)
    x = np.cos(dec) * np.cos(ra) - np.sin(ra) * du - np.sin(dec) * np.cos(ra) * dv
    y = np.cos(dec) * np.sin(ra) + np.cos(ra) * du - np.sin(dec) * np.sin(ra) * dv
    z = np.sin(dec) + np.cos(dec) * dv
    n = np.sqrt(x * x + y * y + z * z)
    return np.degrees(np.arctan2(y, x)) % 360.0, np.degrees(np.arcsin(z / n))


def pair_set(req_ra, req_dec, gaia_ra, gaia_dec, radius_arcsec, pmra=None, pmdec=None, dt_yr=0.0):
    """{(request index, gaia index)} within the radius, Gaia propagated by dt_yr (one epoch for all)."""
    if pmra is not None:
        gaia_ra, gaia_dec = propagate(gaia_ra, gaia_dec, pmra, pmdec, dt_yr)
    req = SkyCoord(np.asarray(req_ra) * u.deg, np.asarray(req_dec) * u.deg)
    gaia = SkyCoord(np.asarray(gaia_ra) * u.deg, np.asarray(gaia_dec) * u.deg)
    i_gaia, i_req, _, _ = req.search_around_sky(gaia, radius_arcsec * u.arcsec)
    return set(zip(i_req.tolist(), i_gaia.tolist()))


def pair_set_per_epoch(req_ra, req_dec, req_epoch_yr, gaia_ra, gaia_dec, pmra, pmdec, gaia_epoch_yr,
                       radius_arcsec):
    """Like ``pair_set`` with each request at its own epoch: one astropy search per distinct epoch."""
    req_ra, req_dec, req_epoch_yr = map(np.asarray, (req_ra, req_dec, req_epoch_yr))
    pairs = set()
    for epoch in np.unique(req_epoch_yr):
        idx = np.flatnonzero(req_epoch_yr == epoch)
        sub = pair_set(req_ra[idx], req_dec[idx], gaia_ra, gaia_dec, radius_arcsec, pmra, pmdec,
                       float(epoch - gaia_epoch_yr))
        pairs |= {(int(idx[i]), j) for i, j in sub}
    return pairs
