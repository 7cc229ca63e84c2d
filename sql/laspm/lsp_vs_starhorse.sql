-- description: LASPM against StarHorse (paper §4.3: bias 6 K / 0.02 / 0.03 dex, scatter 103 K / 0.12 / 0.21 dex) per library and parameter, for spectra with S/N_i above laspm.compare_snr_min and a Gaia match.
-- grain: one row per (library, param)
-- kind: table
-- params: laspm.compare_snr_min
-- tests: unique(library, param); not_null(library, param, n)
-- columns: bias: median of LASPM - StarHorse (K or dex); scatter: 1.4826 MAD of the difference (K or dex); mean_diff: mean difference; n: spectra; n_stars: Gaia sources
with fits as (
    select * from lsp_fits where snr_i > getvariable('laspm.compare_snr_min')
),

matched as (
    select f.library, f.param, m.source_id,
           f.value - case f.param when 'teff_k' then s.teff_k when 'logg_dex' then s.logg_dex else s.mh_dex end as diff
    from fits f
    join xm_lamost_gaia m using (obsid)
    join stg_starhorse s using (source_id)
),

final as (
    select library, param, count(*) as n, count(distinct source_id) as n_stars,
           median(diff) as bias, 1.4826 * mad(diff) as scatter, avg(diff) as mean_diff
    from matched
    where diff is not null
    group by all
)

select * from final
