-- description: systematic offset of each catalogue from StarHorse per class and parameter: a Gaussian fitted robustly by iterative sigma clipping, started from the median and 1.4826 MAD (paper Figs 3-4).
-- grain: one row per (catalog, class, param)
-- kind: table
-- params: labels.offset_clip_nsigma, labels.offset_clip_iterations, labels.offset_min_stars
-- tests: unique(catalog, class, param); not_null(catalog, class, param, n_matched, method, run_id); accepted(param, 'teff_k', 'logg_dex', 'mh_dex')
with deltas as (
    select catalog, class, source_id, 'teff_k' as param, d_teff_k as delta from lbl_starhorse_deltas
    union all select catalog, class, source_id, 'logg_dex', d_logg_dex from lbl_starhorse_deltas
    union all select catalog, class, source_id, 'mh_dex', d_mh_dex from lbl_starhorse_deltas
),

clipped as (
    with recursive iterations(catalog, class, param, iteration, mean, sigma, n_used) as (
        select catalog, class, param, 0, median(delta), 1.4826 * mad(delta), count(*)
        from deltas
        group by catalog, class, param
        union all
        select i.catalog, i.class, i.param, i.iteration + 1, avg(d.delta), stddev_samp(d.delta), count(*)
        from iterations i
        join deltas d
          on d.catalog = i.catalog and d.class = i.class and d.param = i.param
         -- a zero MAD (quantised labels) must not clip everything away
         and abs(d.delta - i.mean) <= getvariable('labels.offset_clip_nsigma') * greatest(i.sigma, 1e-9)
        where i.iteration < getvariable('labels.offset_clip_iterations')
        group by i.catalog, i.class, i.param, i.iteration
    )
    select * from iterations
),

last_iteration as (
    select *
    from clipped
    qualify row_number() over (partition by catalog, class, param order by iteration desc) = 1
),

matched as (
    select catalog, class, param, count(*) as n_matched from deltas group by all
),

final as (
    select
        l.catalog,
        l.class,
        l.param,
        -- too few stars to trust: leave the offset unmeasured so the catalogue is not used for this class
        case when l.n_used >= getvariable('labels.offset_min_stars') then l.mean end as mean,
        l.sigma,
        l.n_used as n,
        m.n_matched,
        l.iteration as iterations,
        'clipped_gaussian_' || getvariable('labels.offset_clip_nsigma') || 'sigma' as method,
        getvariable('run_id') as run_id
    from last_iteration l
    join matched m using (catalog, class, param)
)

select * from final
