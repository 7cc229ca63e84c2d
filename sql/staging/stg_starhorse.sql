-- description: StarHorse EDR3 (Anders et al. 2022) medians, the reference frame every label catalogue is aligned to (paper §2.2).
-- grain: one row per source_id
-- kind: view
-- params:
-- tests: unique(source_id); not_null(source_id, teff_k, logg_dex, mh_dex)
with starhorse as (
    select * from landing.starhorse
),

final as (
    select
        source_id::bigint as source_id,
        teff_k::double as teff_k,
        logg_dex::double as logg_dex,
        mh_dex::double as mh_dex,
        (teff84_k - teff16_k) / 2 as teff_err_k,
        (logg84_dex - logg16_dex) / 2 as logg_err_dex,
        (mh84_dex - mh16_dex) / 2 as mh_err_dex,
        dist_kpc::double as dist_kpc,
        av_mag::double as av_mag
    from starhorse
    where teff_k is not null and logg_dex is not null and mh_dex is not null
)

select * from final
