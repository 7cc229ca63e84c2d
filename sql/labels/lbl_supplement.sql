-- description: the §2.2.3 supplement: M stars with LAMOST S/N_i above the threshold and tight ASPCAP errors, shifted by the ASPCAP offsets of their class, taken regardless of the CMD box.
-- grain: one row per source_id
-- kind: table
-- params: labels.supplement_snr_min, labels.supplement_teff_err_max_k, labels.supplement_logg_err_max_dex, labels.supplement_mh_err_max_dex, labels.supplement_dwarf_logg_min_dex
-- tests: unique(source_id); not_null(source_id, class, teff_k, logg_dex, mh_dex)
with stars as (
    select source_id, obsid, snr_i, lum_class_hint from sel_stars
),

primary_sample as (
    select source_id, class from sel_primary
),

aspcap as (
    select * from xm_label_catalogs where catalog = 'aspcap'
),

offsets as (
    select
        class,
        any_value(mean) filter (where param = 'teff_k') as offset_teff_k,
        any_value(mean) filter (where param = 'logg_dex') as offset_logg_dex,
        any_value(mean) filter (where param = 'mh_dex') as offset_mh_dex
    from lbl_offsets
    where catalog = 'aspcap'
    group by class
),

selected as (
    select
        a.*,
        s.obsid as best_obsid,
        s.snr_i,
        -- the CMD class where the star sits in a box, else the LAMOST subclass, else its ASPCAP log g (paper Fig. 5)
        coalesce(p.class, s.lum_class_hint,
                 case when a.logg_dex >= getvariable('labels.supplement_dwarf_logg_min_dex') then 'dwarf' else 'giant' end)
            as class
    from aspcap a
    join stars s using (source_id)
    left join primary_sample p using (source_id)
    where s.snr_i > getvariable('labels.supplement_snr_min')
      and a.teff_err_k < getvariable('labels.supplement_teff_err_max_k')
      and a.logg_err_dex < getvariable('labels.supplement_logg_err_max_dex')
      and a.mh_err_dex < getvariable('labels.supplement_mh_err_max_dex')
),

final as (
    select
        s.source_id, s.best_obsid as obsid, s.snr_i, s.class, 'aspcap' as label_source,
        s.teff_k - o.offset_teff_k as teff_k,
        s.logg_dex - o.offset_logg_dex as logg_dex,
        s.mh_dex - o.offset_mh_dex as mh_dex,
        o.offset_teff_k, o.offset_logg_dex, o.offset_mh_dex
    from selected s
    join offsets o using (class)
    where o.offset_teff_k is not null and o.offset_logg_dex is not null and o.offset_mh_dex is not null
)

select * from final
