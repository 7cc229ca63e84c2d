-- description: LASPM against APOGEE (paper §4.4): ASPCAP stars with STARFLAG = 0 and LAMOST S/N_i above laspm.compare_snr_min, their ASPCAP labels shifted by the ASPCAP - StarHorse offsets measured for their class (lbl_offsets_wide), per library, class and parameter (paper dwarfs 54 K / 0.06 / 0.12, giants 23 K / 0.15 / 0.15 dex scatter).
-- grain: one row per (library, class, param)
-- kind: table
-- params: laspm.compare_snr_min, labels.supplement_catalog, labels.supplement_dwarf_logg_min_dex
-- tests: unique(library, class, param); not_null(library, class, param, n); accepted(class, 'dwarf', 'giant')
-- columns: bias: median of LASPM - shifted ASPCAP (K or dex); scatter: 1.4826 MAD of the difference (K or dex); n: spectra; n_stars: APOGEE stars
with fits as (
    select * from lsp_fits where snr_i > getvariable('laspm.compare_snr_min')
),

aspcap as (
    select * from xm_aspcap where coalesce(starflag, 0) = 0 and source_id is not null
),

classed as (
    -- the CMD box's class where the star has one, else ASPCAP's log g (as the supplement does, §2.2.3)
    select a.*, coalesce(p.class, case when a.logg_dex >= getvariable('labels.supplement_dwarf_logg_min_dex')
                                       then 'dwarf' else 'giant' end) as class
    from aspcap a
    left join sel_primary p using (source_id)
),

shifted as (
    select c.source_id, c.class, c.apogee_id,
           c.teff_k - o.offset_teff_k as teff_k, c.logg_dex - o.offset_logg_dex as logg_dex,
           c.mh_dex - o.offset_mh_dex as mh_dex
    from classed c
    join lbl_offsets_wide o on o.class = c.class and o.catalog = getvariable('labels.supplement_catalog')
),

matched as (
    select f.library, a.class, f.param, a.apogee_id,
           f.value - case f.param when 'teff_k' then a.teff_k when 'logg_dex' then a.logg_dex else a.mh_dex end as diff
    from fits f
    join xm_lamost_gaia m using (obsid)
    join shifted a on a.source_id = m.source_id
),

final as (
    select library, class, param, count(*) as n, count(distinct apogee_id) as n_stars,
           median(diff) as bias, 1.4826 * mad(diff) as scatter
    from matched
    where diff is not null
    group by all
)

select * from final
