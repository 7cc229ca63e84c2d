-- description: Gaia sources listed as variable in any list, by id or by position (paper §2.1 removes them).
-- grain: one row per source_id
-- kind: view
-- params:
-- tests: unique(source_id); not_null(source_id)
with by_id as (
    select source_id, survey from stg_variables where source_id is not null
),

by_position as (
    select p.source_id, v.survey
    from xm_gaia_pairs p
    join stg_variables v on v.variable_key = p.request_key
    where p.request_kind = 'variables'
),

final as (
    select source_id, string_agg(distinct survey, ',' order by survey) as surveys, count(*) as n_listings
    from (select * from by_id union all select * from by_position)
    group by source_id
)

select * from final
