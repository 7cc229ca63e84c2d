-- description: Bailer-Jones et al. (2021) photogeometric and geometric distances.
-- grain: one row per source_id
-- kind: view
-- params:
-- tests: unique(source_id); not_null(source_id)
with bj as (
    select * from landing.bailer_jones
),

final as (
    select
        source_id::bigint as source_id,
        r_med_photogeo_pc::double as r_med_photogeo_pc,
        r_lo_photogeo_pc::double as r_lo_photogeo_pc,
        r_hi_photogeo_pc::double as r_hi_photogeo_pc,
        r_med_geo_pc::double as r_med_geo_pc
    from bj
)

select * from final
