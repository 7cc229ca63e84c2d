-- description: the Gaia counterpart of every LAMOST spectrum: by the catalogue's Gaia id, else the nearest source within the radius after epoch propagation; ambiguous and unmatched spectra kept and flagged.
-- grain: one row per obsid
-- kind: table
-- params: xmatch.max_mag_diff
-- tests: unique(obsid); not_null(obsid, match_method, is_ambiguous); accepted(match_method, 'gaia_id', 'position', 'none')
with lamost as (
    select obsid, gaia_source_id from stg_lamost
),

gaia as (
    select source_id from stg_gaia
),

pairs as (
    select request_key::bigint as obsid, source_id, g_mag, sep_arcsec
    from xm_gaia_pairs
    where request_kind = 'lamost'
),

ranked as (
    select
        *,
        row_number() over (partition by obsid order by sep_arcsec, g_mag nulls last, source_id) as candidate_rank,
        count(*) over (partition by obsid) as n_candidates,
        first_value(g_mag) over (partition by obsid order by sep_arcsec, g_mag nulls last, source_id) as best_g_mag
    from pairs
),

by_position as (
    -- a fainter neighbour far off in G cannot be mistaken for the fibre's target; one of similar G (or unknown G) can
    select
        obsid,
        any_value(source_id) filter (where candidate_rank = 1) as source_id,
        min(sep_arcsec) as sep_arcsec,
        any_value(n_candidates) as n_candidates,
        coalesce(bool_or(candidate_rank > 1
            and coalesce(abs(g_mag - best_g_mag) <= getvariable('xmatch.max_mag_diff'), true)), false) as is_ambiguous
    from ranked
    group by obsid
),

final as (
    select
        l.obsid,
        coalesce(g.source_id, p.source_id) as source_id,
        case when g.source_id is not null then 'gaia_id'
             when p.source_id is not null then 'position'
             else 'none' end as match_method,
        case when g.source_id is null then p.sep_arcsec end as sep_arcsec,
        case when g.source_id is not null then 1 else coalesce(p.n_candidates, 0) end as n_candidates,
        g.source_id is null and coalesce(p.is_ambiguous, false) as is_ambiguous,
        coalesce(g.source_id, p.source_id) is not null as is_matched
    from lamost l
    left join gaia g on g.source_id = l.gaia_source_id
    left join by_position p on p.obsid = l.obsid
)

select * from final
