-- description: the LASPM results that carry labels (the fit succeeded), long by parameter, with the star they belong to: repeat visits share a LAMOST designation, and the Gaia source where the cross-match found one (paper §4.2-4.4).
-- grain: one row per (library, obsid, param)
-- kind: table
-- params:
-- tests: unique(library, obsid, param); not_null(library, obsid, param, value, designation); accepted(param, 'teff_k', 'logg_dex', 'mh_dex')
-- columns: value: the LASPM label (K for teff_k, dex otherwise); designation: the LAMOST designation (one per star, shared by its repeat visits)
with results as (
    -- flag 32: no template could be fitted (NULL labels)
    select * from lsp_results where flags & 32 = 0
),

stars as (
    select obsid, designation from stg_lamost
),

final as (
    select r.library, r.obsid, s.designation, r.snr_i, r.flags, u.param, u.value
    from results r
    join stars s using (obsid)
    cross join lateral (
        select 'teff_k' as param, r.teff_k as value
        union all select 'logg_dex', r.logg_dex
        union all select 'mh_dex', r.mh_dex
    ) u
    where u.value is not null
)

select * from final
