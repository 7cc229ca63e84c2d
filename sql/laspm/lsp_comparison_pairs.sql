-- description: every LASPM label beside its reference for the comparisons of paper §4.3-4.4: StarHorse (spectra with a Gaia match) and ASPCAP (STARFLAG = 0, shifted by the ASPCAP - StarHorse offsets measured for the star's class), for spectra with S/N_i above laspm.compare_snr_min.
-- grain: one row per (reference, library, obsid, param)
-- kind: table
-- params: laspm.compare_snr_min, labels.supplement_catalog, labels.supplement_dwarf_logg_min_dex
-- tests: not_null(reference, library, obsid, param, value, ref_value, source_id); accepted(reference, 'starhorse', 'apogee'); accepted(class, 'dwarf', 'giant')
-- columns: reference: 'starhorse' or 'apogee' (ASPCAP shifted onto the StarHorse scale); value: the LASPM label (K or dex); ref_value: the reference label (K or dex); class: the star's class (APOGEE pairs: the CMD box's, else ASPCAP log g's)
with fits as (
    select f.*, m.source_id
    from lsp_fits f
    join xm_lamost_gaia m using (obsid)
    where f.snr_i > getvariable('laspm.compare_snr_min') and m.source_id is not null
),

starhorse as (
    select 'starhorse' as reference, f.library, f.obsid, f.source_id, null::varchar as class, f.param, f.value,
           case f.param when 'teff_k' then s.teff_k when 'logg_dex' then s.logg_dex else s.mh_dex end as ref_value
    from fits f
    join stg_starhorse s using (source_id)
),

aspcap as (
    -- the CMD box's class where the star has one, else ASPCAP's log g (as the supplement does, §2.2.3)
    select a.source_id, a.apogee_id, a.teff_k, a.logg_dex, a.mh_dex,
           coalesce(p.class, case when a.logg_dex >= getvariable('labels.supplement_dwarf_logg_min_dex')
                                  then 'dwarf' else 'giant' end) as class
    from xm_aspcap a
    left join sel_primary p using (source_id)
    where coalesce(a.starflag, 0) = 0 and a.source_id is not null
),

apogee as (
    select 'apogee' as reference, f.library, f.obsid, f.source_id, a.class, f.param, f.value,
           case f.param when 'teff_k' then a.teff_k - o.offset_teff_k
                        when 'logg_dex' then a.logg_dex - o.offset_logg_dex
                        else a.mh_dex - o.offset_mh_dex end as ref_value
    from fits f
    join aspcap a using (source_id)
    join lbl_offsets_wide o on o.class = a.class and o.catalog = getvariable('labels.supplement_catalog')
),

final as (
    select * from starhorse where ref_value is not null
    union all by name
    select * from apogee where ref_value is not null
)

select * from final
