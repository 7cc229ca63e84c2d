-- description: M dwarfs of Ding et al. (2022), keyed on the LAMOST obsid.
-- grain: one row per obsid
-- kind: view
-- params:
-- tests: unique(obsid); not_null(obsid)
with catalog as (
    select * from landing.ding22
),

final as (
    select
        obsid::bigint as obsid,
        source_id::bigint as source_id,
        ra_deg::double as ra_deg,
        dec_deg::double as dec_deg,
        teff_k::double as teff_k,
        teff_err_k::double as teff_err_k,
        logg_dex::double as logg_dex,
        logg_err_dex::double as logg_err_dex,
        mh_dex::double as mh_dex,
        mh_err_dex::double as mh_err_dex
    from catalog
)

select * from final
