-- description: per-star V-band extinction from the 3D dust map; A_V = R_V E(B-V) where only E(B-V) is given.
-- grain: one row per source_id
-- kind: view
-- params: select.dust_rv
-- tests: unique(source_id); not_null(source_id)
with dust as (
    select * from landing.dust
),

final as (
    select
        source_id::bigint as source_id,
        coalesce(av_mag, getvariable('select.dust_rv') * ebv_mag)::double as av_mag,
        ebv_mag::double as ebv_mag
    from dust
)

select * from final
