-- description: usable ASPCAP rows with their Gaia source: by GAIAEDR3_SOURCE_ID, else the nearest Gaia source within the catalogue radius.
-- grain: one row per apogee_id
-- kind: view
-- params:
-- tests: unique(apogee_id); not_null(apogee_id, match_method)
with aspcap as (
    select * from stg_aspcap where is_usable
),

gaia as (
    select source_id from stg_gaia
),

nearest as (
    select request_key as apogee_id, source_id, sep_arcsec
    from xm_gaia_pairs
    where request_kind = 'aspcap'
    qualify row_number() over (partition by request_key order by sep_arcsec, source_id) = 1
),

final as (
    select
        a.* exclude (source_id),
        coalesce(g.source_id, n.source_id) as source_id,
        case when g.source_id is not null then 'gaia_id'
             when n.source_id is not null then 'position'
             else 'none' end as match_method
    from aspcap a
    left join gaia g on g.source_id = a.source_id
    left join nearest n on n.apogee_id = a.apogee_id
)

select * from final
