-- description: every position that needs a Gaia counterpart by position (no usable Gaia id), with the epoch of that position and its match radius.
-- grain: one row per (request_kind, request_key)
-- kind: view
-- params: xmatch.radius_arcsec, xmatch.catalog_radius_arcsec, xmatch.catalog_epoch_yr
-- tests: unique(request_kind, request_key); not_null(ra_deg, dec_deg, epoch_yr, radius_arcsec)
with lamost as (
    select obsid, gaia_source_id, ra_deg, dec_deg, epoch_yr from stg_lamost
),

aspcap as (
    select apogee_id, source_id, ra_deg, dec_deg from stg_aspcap where is_usable
),

variables as (
    select variable_key, source_id, ra_deg, dec_deg from stg_variables
),

gaia_ids as (
    select source_id from stg_gaia
),

lamost_requests as (
    -- an id the Gaia table does not hold is as good as none
    select 'lamost' as request_kind, obsid::varchar as request_key, ra_deg, dec_deg, epoch_yr,
           getvariable('xmatch.radius_arcsec') as radius_arcsec
    from lamost
    where gaia_source_id is null or gaia_source_id not in (select source_id from gaia_ids)
),

aspcap_requests as (
    select 'aspcap', apogee_id, ra_deg, dec_deg, getvariable('xmatch.catalog_epoch_yr'),
           getvariable('xmatch.catalog_radius_arcsec')
    from aspcap
    where source_id is null or source_id not in (select source_id from gaia_ids)
),

variable_requests as (
    select 'variables', variable_key, ra_deg, dec_deg, getvariable('xmatch.catalog_epoch_yr'),
           getvariable('xmatch.catalog_radius_arcsec')
    from variables
    where source_id is null
),

final as (
    select * from lamost_requests
    union all select * from aspcap_requests
    union all select * from variable_requests
)

select * from final
where ra_deg is not null and dec_deg is not null
