-- description: The decision in force for each inspected spectrum (paper §2.4 manual inspection): the latest row of landing.inspection_decisions per obsid, made by a person or an accepted suggestion (`mgold inspect accept-suggestions`); a later decision replaces an earlier one.
-- grain: one row per obsid
-- kind: table
-- params:
-- tests: unique(obsid); not_null(obsid, bin_id, decision, by_person); accepted(decision, 'keep', 'reject')
-- columns: by_person: made by a person (false: a suggestion recorded in bulk, suggested = true)
with decisions as (
    select bin_id, obsid, decision, decided_at, note, coalesce(suggested, false) as suggested
    from landing.inspection_decisions
),

latest as (
    select *
    from decisions
    qualify row_number() over (partition by obsid order by decided_at desc, suggested) = 1
),

final as (
    select bin_id, obsid, decision, not suggested as by_person, decided_at, note
    from latest
)

select * from final
