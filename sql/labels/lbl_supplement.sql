-- description: the §2.2.3 supplement: M stars with LAMOST S/N_i above the threshold and tight errors in labels.supplement_catalog (ASPCAP), shifted by its offsets of their class, taken regardless of the CMD box; the class is the CMD box's, else the ASPCAP log g's (paper Fig. 5). A star whose ASPCAP - StarHorse delta lies outside the clipped Gaussian its class's offset was fitted with is dropped: a catastrophic ASPCAP outlier keeps its small reported errors, so only that comparison shows it.
-- grain: one row per source_id
-- kind: table
-- params: labels.supplement_catalog, labels.supplement_snr_min, labels.supplement_teff_err_max_k, labels.supplement_logg_err_max_dex, labels.supplement_mh_err_max_dex, labels.supplement_dwarf_logg_min_dex, labels.offset_clip_nsigma
-- tests: unique(source_id); not_null(source_id, class, teff_k, logg_dex, mh_dex)
with stars as (
    select source_id, obsid, snr_i from sel_stars
),

primary_sample as (
    select source_id, class from sel_primary
),

aspcap as (
    select * from xm_label_catalogs where catalog = getvariable('labels.supplement_catalog')
),

starhorse as (
    select source_id, teff_k as sh_teff_k, logg_dex as sh_logg_dex, mh_dex as sh_mh_dex from stg_starhorse
),

offsets as (
    select * exclude (catalog) from lbl_offsets_wide where catalog = getvariable('labels.supplement_catalog')
),

selected as (
    select
        a.*,
        s.obsid as best_obsid,
        s.snr_i,
        -- outside both boxes the precise ASPCAP log g separates the loci (paper Fig. 5); the LAMOST dM/gM
        -- subclass is wrong for several per cent of stars and would shift a giant by the dwarf offsets
        coalesce(p.class,
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
        s.source_id, s.best_obsid as obsid, s.snr_i, s.class, s.catalog as label_source,
        s.teff_k - o.offset_teff_k as teff_k,
        s.logg_dex - o.offset_logg_dex as logg_dex,
        s.mh_dex - o.offset_mh_dex as mh_dex,
        o.offset_teff_k, o.offset_logg_dex, o.offset_mh_dex
    from selected s
    join offsets o using (class)
    -- a star StarHorse lacks cannot be checked and is kept: the paper asks no StarHorse match of the supplement
    left join starhorse h using (source_id)
    where o.offset_teff_k is not null and o.offset_logg_dex is not null and o.offset_mh_dex is not null
      and coalesce(abs(s.teff_k - o.offset_teff_k - h.sh_teff_k)
                   <= getvariable('labels.offset_clip_nsigma') * o.sigma_teff_k, true)
      and coalesce(abs(s.logg_dex - o.offset_logg_dex - h.sh_logg_dex)
                   <= getvariable('labels.offset_clip_nsigma') * o.sigma_logg_dex, true)
      and coalesce(abs(s.mh_dex - o.offset_mh_dex - h.sh_mh_dex)
                   <= getvariable('labels.offset_clip_nsigma') * o.sigma_mh_dex, true)
)

select * from final
