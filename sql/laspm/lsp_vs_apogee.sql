-- description: LASPM against APOGEE (paper §4.4): ASPCAP stars with STARFLAG = 0 and LAMOST S/N_i above laspm.compare_snr_min, their ASPCAP labels shifted by the ASPCAP - StarHorse offsets measured for their class, per library, class and parameter (paper dwarfs 54 K / 0.06 / 0.12, giants 23 K / 0.15 / 0.15 dex scatter).
-- grain: one row per (library, class, param)
-- kind: table
-- params:
-- tests: unique(library, class, param); not_null(library, class, param, n); accepted(class, 'dwarf', 'giant')
-- columns: bias: median of LASPM - shifted ASPCAP (K or dex); scatter: 1.4826 MAD of the difference (K or dex); n: spectra; n_stars: Gaia sources of the APOGEE stars
with pairs as (
    select * from lsp_comparison_pairs where reference = 'apogee'
),

final as (
    select library, class, param, count(*) as n, count(distinct source_id) as n_stars,
           median(value - ref_value) as bias, 1.4826 * mad(value - ref_value) as scatter
    from pairs
    group by all
)

select * from final
