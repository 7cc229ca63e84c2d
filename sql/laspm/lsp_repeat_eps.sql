-- description: the unbiased repeat estimator of paper §4.2, Eq. 1: epsilon = sqrt(N / (N - 1)) (P_i - mean P) for every visit of a star observed N >= 2 times, per library and parameter.
-- grain: one row per (library, obsid, param) of stars with at least two fitted visits
-- kind: table
-- params:
-- tests: unique(library, obsid, param); not_null(library, obsid, param, eps, n_visits); range(n_visits, 2, 1000)
-- columns: eps: sqrt(N/(N-1)) times the visit's deviation from the star's mean (K for teff_k, dex otherwise); n_visits: fitted visits of the star (N)
with fits as (
    select * from lsp_fits
),

per_star as (
    select *, count(*) over w as n_visits, avg(value) over w as star_mean
    from fits
    window w as (partition by library, designation, param)
),

final as (
    select
        library, obsid, designation, param, snr_i, n_visits,
        sqrt(n_visits / (n_visits - 1.0)) * (value - star_mean) as eps
    from per_star
    where n_visits >= 2
)

select * from final
