-- description: the offsets of each label catalogue from StarHorse that mgold measured on this build (clipped Gaussian of catalogue - StarHorse, paper §2.2, Figs 3-4), with how many stars measured them and what the paper says about each.
-- grain: one row per (catalog, class, param)
-- kind: table
-- params:
-- tests: unique(catalog, class, param); not_null(catalog, class, param, unit, n_matched, is_measured); accepted(param, 'teff_k', 'logg_dex', 'mh_dex')
-- columns: catalog: label catalogue (aspcap, ding22, laspm, qiu23), from lbl_offsets; class: dwarf or giant (the CMD box); param: label (teff_k, logg_dex, mh_dex); unit: unit of measured_offset, sigma and offset_se (K or dex), from mart_parameters;
--   measured_offset: catalogue - StarHorse offset measured, the mean of the clipped Gaussian (unit), NULL when fewer than labels.offset_min_stars stars were left; sigma: sigma of the clipped Gaussian (unit);
--   n: stars left after clipping; n_matched: stars with both the catalogue and StarHorse labels; iterations: clipping iterations run; method: how the offset was fitted;
--   is_measured: the offset was measured (and applied to the catalogue's labels); offset_se: standard error of the offset, sigma / sqrt(n) (unit);
--   paper_offset: the offset the paper quotes as a number (unit), NULL where it gives none, from mart_paper_offsets; paper_says: the paper's words on this offset; paper_section: where the paper says it; run_id: the run that measured it
with measured as (
    select * from lbl_offsets
),

labels as (
    select param, unit from mart_parameters
),

paper as (
    select * from mart_paper_offsets
),

final as (
    select
        m.catalog, m.class, m.param, l.unit,
        m.mean as measured_offset, m.sigma, m.n, m.n_matched, m.iterations, m.method,
        m.mean is not null as is_measured,
        m.sigma / sqrt(m.n) as offset_se,
        p.paper_offset, p.paper_says, p.paper_section,
        m.run_id
    from measured m
    join labels l using (param)
    left join paper p using (catalog, class, param)
)

select * from final
