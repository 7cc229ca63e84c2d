-- description: LASPM against StarHorse (paper §4.3: bias 6 K / 0.02 / 0.03 dex, scatter 103 K / 0.12 / 0.21 dex) per library and parameter, for spectra with S/N_i above laspm.compare_snr_min and a Gaia match.
-- grain: one row per (library, param)
-- kind: table
-- params:
-- tests: unique(library, param); not_null(library, param, n)
-- columns: bias: median of LASPM - StarHorse (K or dex); scatter: 1.4826 MAD of the difference (K or dex); mean_diff: mean difference; n: spectra; n_stars: Gaia sources
with pairs as (
    select * from lsp_comparison_pairs where reference = 'starhorse'
),

final as (
    select library, param, count(*) as n, count(distinct source_id) as n_stars,
           median(value - ref_value) as bias, 1.4826 * mad(value - ref_value) as scatter,
           avg(value - ref_value) as mean_diff
    from pairs
    group by all
)

select * from final
