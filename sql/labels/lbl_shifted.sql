-- description: catalogue labels shifted onto the StarHorse scale by their measured offsets, with the deltas after shifting and the class's delta cuts (paper §2.2.1-2.2.2).
-- grain: one row per (catalog, source_id)
-- kind: table
-- params: labels.dwarf_max_dteff_k, labels.dwarf_max_dlogg_dex, labels.dwarf_max_dmh_dex, labels.giant_max_dteff_k, labels.giant_max_dlogg_dex, labels.giant_max_dmh_dex
-- tests: unique(catalog, source_id); not_null(teff_k, logg_dex, mh_dex, passes_delta)
with deltas as (
    select * from lbl_starhorse_deltas
),

offsets as (
    select catalog, class, offset_teff_k, offset_logg_dex, offset_mh_dex from lbl_offsets_wide
),

shifted as (
    select
        d.catalog, d.source_id, d.obsid, d.class, d.priority_rank,
        d.teff_k - o.offset_teff_k as teff_k,
        d.logg_dex - o.offset_logg_dex as logg_dex,
        d.mh_dex - o.offset_mh_dex as mh_dex,
        d.teff_err_k, d.logg_err_dex, d.mh_err_dex,
        o.offset_teff_k, o.offset_logg_dex, o.offset_mh_dex,
        d.d_teff_k - o.offset_teff_k as d_teff_k,
        d.d_logg_dex - o.offset_logg_dex as d_logg_dex,
        d.d_mh_dex - o.offset_mh_dex as d_mh_dex
    from deltas d
    -- a catalogue whose offsets could not be measured for this class transfers nothing to it
    join offsets o using (catalog, class)
    where o.offset_teff_k is not null and o.offset_logg_dex is not null and o.offset_mh_dex is not null
),

final as (
    select
        *,
        case class
            when 'dwarf' then abs(d_teff_k) < getvariable('labels.dwarf_max_dteff_k')
                          and abs(d_logg_dex) < getvariable('labels.dwarf_max_dlogg_dex')
                          and abs(d_mh_dex) < getvariable('labels.dwarf_max_dmh_dex')
            else abs(d_teff_k) < getvariable('labels.giant_max_dteff_k')
                 and abs(d_logg_dex) < getvariable('labels.giant_max_dlogg_dex')
                 and abs(d_mh_dex) < getvariable('labels.giant_max_dmh_dex')
        end as passes_delta
    from shifted
)

select * from final
