-- description: every (request, Gaia source) pair closer than the request radius after propagating Gaia from ref_epoch to the request epoch; zones algorithm (Gray et al. 2007), RA wrap and poles handled.
-- grain: one row per (request_kind, request_key, source_id)
-- kind: table
-- params: xmatch.zone_height_deg
-- tests: unique(request_kind, request_key, source_id); not_null(sep_arcsec)
with requests as (
    select * from xm_position_requests
),

gaia as (
    select source_id, ra_deg, dec_deg, ref_epoch_yr,
           coalesce(pmra_masyr, 0) as pmra_masyr, coalesce(pmdec_masyr, 0) as pmdec_masyr, g_mag
    from stg_gaia
),

-- the furthest any Gaia source can drift between its ref_epoch and any request epoch widens the zone search,
-- so a fast mover is still a candidate; the exact test below uses the propagated position
drift as (
    select coalesce(
        (select max(sqrt(pmra_masyr ^ 2 + pmdec_masyr ^ 2)) from gaia) / 1000.0
        * greatest((select max(epoch_yr) from requests) - (select min(ref_epoch_yr) from gaia),
                   (select max(ref_epoch_yr) from gaia) - (select min(epoch_yr) from requests), 0),
        0) as drift_arcsec
),

cells as (
    -- the sky cut into declination zones and, within each, RA cells of the same height in degrees
    select getvariable('xmatch.zone_height_deg') as h, ceil(360.0 / getvariable('xmatch.zone_height_deg'))::int as n_ra
),

gaia_zoned as (
    select g.*, floor((dec_deg + 90) / h)::int as zone, floor(ra_deg / h)::int % n_ra as ra_cell
    from gaia g, cells
),

request_windows as (
    select
        r.*,
        (r.radius_arcsec + d.drift_arcsec) / 3600.0 as search_deg
    from requests r, drift d
),

request_alpha as (
    select
        *,
        -- RA half-width of the search circle at this declination; the whole circle of RA near a pole
        case
            when abs(dec_deg) + search_deg >= 89.999 then 180.0
            else degrees(atan(sin(radians(search_deg))
                 / sqrt(abs(cos(radians(dec_deg - search_deg)) * cos(radians(dec_deg + search_deg))))))
        end as alpha_deg
    from request_windows
),

request_zones as (
    select
        a.*,
        cells.n_ra,
        unnest(range(
            floor((greatest(dec_deg - search_deg, -90) + 90) / h)::int,
            floor((least(dec_deg + search_deg, 90) + 90) / h)::int + 1
        )) as zone,
        case when alpha_deg >= 180 then 0 else floor((ra_deg - alpha_deg) / h)::int end as ra_cell_lo,
        case when alpha_deg >= 180 then n_ra - 1 else floor((ra_deg + alpha_deg) / h)::int end as ra_cell_hi
    from request_alpha a, cells
),

request_cells as (
    -- cells past 0/360 wrap round; distinct because a wide window may wrap onto itself
    select distinct * exclude (ra_cell_raw), ((ra_cell_raw % n_ra) + n_ra) % n_ra as ra_cell
    from (select *, unnest(range(ra_cell_lo, ra_cell_hi + 1)) as ra_cell_raw from request_zones)
),

candidates as (
    select
        r.request_kind, r.request_key, r.ra_deg as req_ra_deg, r.dec_deg as req_dec_deg,
        r.epoch_yr, r.radius_arcsec,
        g.source_id, g.ra_deg, g.dec_deg, g.pmra_masyr, g.pmdec_masyr, g.g_mag,
        r.epoch_yr - g.ref_epoch_yr as dt_yr
    from request_cells r
    join gaia_zoned g
      on g.zone = r.zone
     and g.ra_cell = r.ra_cell
     and g.dec_deg between r.dec_deg - r.search_deg and r.dec_deg + r.search_deg
     -- RA distance taken modulo 360 so 359.9 and 0.1 are neighbours
     and abs(((g.ra_deg - r.ra_deg) + 540.0) % 360.0 - 180.0) <= r.alpha_deg
),

propagated as (
    -- linear motion on the tangent plane (proper motion in mas/yr, pmra includes cos dec), then back onto the sphere
    select
        *,
        cos(radians(dec_deg)) * cos(radians(ra_deg))
            - sin(radians(ra_deg)) * radians(pmra_masyr * dt_yr / 3.6e6)
            - sin(radians(dec_deg)) * cos(radians(ra_deg)) * radians(pmdec_masyr * dt_yr / 3.6e6) as gx,
        cos(radians(dec_deg)) * sin(radians(ra_deg))
            + cos(radians(ra_deg)) * radians(pmra_masyr * dt_yr / 3.6e6)
            - sin(radians(dec_deg)) * sin(radians(ra_deg)) * radians(pmdec_masyr * dt_yr / 3.6e6) as gy,
        sin(radians(dec_deg)) + cos(radians(dec_deg)) * radians(pmdec_masyr * dt_yr / 3.6e6) as gz,
        cos(radians(req_dec_deg)) * cos(radians(req_ra_deg)) as rx,
        cos(radians(req_dec_deg)) * sin(radians(req_ra_deg)) as ry,
        sin(radians(req_dec_deg)) as rz
    from candidates
),

separations as (
    select
        *,
        sqrt(gx * gx + gy * gy + gz * gz) as gnorm
    from propagated
),

final as (
    select
        request_kind,
        request_key,
        source_id,
        g_mag,
        -- chord length -> angle: accurate at arcsecond scales where acos(dot) is not
        degrees(2 * asin(least(1.0, sqrt((gx / gnorm - rx) ^ 2 + (gy / gnorm - ry) ^ 2 + (gz / gnorm - rz) ^ 2) / 2)))
            * 3600.0 as sep_arcsec,
        radius_arcsec,
        dt_yr
    from separations
)

select * from final
where sep_arcsec <= radius_arcsec
