-- description: (catalogue - StarHorse) per parameter for primary-sample stars labelled by a catalogue their class may take labels from (paper §2.2, Figs 3-4).
-- grain: one row per (catalog, source_id)
-- kind: table
-- params: labels.dwarf_priority, labels.giant_priority
-- tests: unique(catalog, source_id); not_null(d_teff_k, d_logg_dex, d_mh_dex, priority_rank)
with primary_sample as (
    select source_id, class from sel_primary
),

labels as (
    select * from xm_label_catalogs
),

starhorse as (
    select source_id, teff_k as sh_teff_k, logg_dex as sh_logg_dex, mh_dex as sh_mh_dex from stg_starhorse
),

eligible as (
    select
        l.*,
        p.class,
        -- 1 = highest priority; 0 = this class takes no labels from this catalogue
        list_position(case p.class when 'dwarf' then getvariable('labels.dwarf_priority')
                                   else getvariable('labels.giant_priority') end, l.catalog) as priority_rank
    from labels l
    join primary_sample p using (source_id)
),

final as (
    select
        e.*,
        s.sh_teff_k, s.sh_logg_dex, s.sh_mh_dex,
        e.teff_k - s.sh_teff_k as d_teff_k,
        e.logg_dex - s.sh_logg_dex as d_logg_dex,
        e.mh_dex - s.sh_mh_dex as d_mh_dex
    from eligible e
    join starhorse s using (source_id)
    where coalesce(e.priority_rank, 0) > 0
)

select * from final
