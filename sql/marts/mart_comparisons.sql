-- description: LASPM against the reference catalogues, one long table (paper §4.3 StarHorse, Figs 18; §4.4 APOGEE with ASPCAP shifted by its measured offsets, Figs 19-20): bias and scatter per template library, reference, class and label, from lsp_vs_starhorse and lsp_vs_apogee.
-- grain: one row per (reference, library, class, param)
-- kind: table
-- params:
-- tests: unique(reference, library, class, param); not_null(reference, library, class, param, unit, n); accepted(reference, 'starhorse', 'apogee'); accepted(class, 'all', 'dwarf', 'giant')
-- columns: reference: the catalogue LASPM is compared with (starhorse, apogee); library: template library of the LASPM results; class: dwarf or giant (APOGEE, by CMD box or ASPCAP log g), all for StarHorse; param: label (teff_k, logg_dex, mh_dex); unit: unit of bias, scatter and mean_diff (K or dex), from mart_parameters;
--   n: spectra compared (LAMOST S/N_i above laspm.compare_snr_min); n_stars: distinct reference stars (Gaia sources or APOGEE ids); bias: median of LASPM - reference (unit); scatter: 1.4826 MAD of LASPM - reference (unit); mean_diff: mean of LASPM - reference (unit), NULL for APOGEE
with starhorse as (
    select 'starhorse' as reference, library, 'all' as class, param, n, n_stars, bias, scatter, mean_diff
    from lsp_vs_starhorse
),

apogee as (
    select 'apogee' as reference, library, class, param, n, n_stars, bias, scatter, null::double as mean_diff
    from lsp_vs_apogee
),

labels as (
    select param, unit from mart_parameters
),

final as (
    select c.reference, c.library, c.class, c.param, l.unit, c.n, c.n_stars, c.bias, c.scatter, c.mean_diff
    from (select * from starhorse union all by name select * from apogee) c
    join labels l using (param)
)

select * from final
