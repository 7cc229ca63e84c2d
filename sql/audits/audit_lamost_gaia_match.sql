-- description: LAMOST x Gaia matches pointing at no Gaia source, positional matches beyond the radius, or an id match that ignored the catalogue's Gaia id.
with matches as (
    select * from xm_lamost_gaia
),

final as (
    select obsid, source_id, match_method, 'source not in stg_gaia' as reason
    from matches
    where source_id is not null and source_id not in (select source_id from stg_gaia)
    union all
    select obsid, source_id, match_method, 'positional match beyond xmatch.radius_arcsec'
    from matches
    where match_method = 'position' and sep_arcsec > getvariable('xmatch.radius_arcsec')
    union all
    select m.obsid, m.source_id, m.match_method, 'catalogue Gaia id known but not used'
    from matches m
    join stg_lamost l using (obsid)
    where l.gaia_source_id in (select source_id from stg_gaia) and m.source_id is distinct from l.gaia_source_id
)

select * from final
