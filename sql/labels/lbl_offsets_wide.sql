-- description: the measured offsets of lbl_offsets as one row per catalogue and class: mean and sigma of (catalogue - StarHorse) for each parameter, NULL where too few stars measured it (paper Figs 3-4).
-- grain: one row per (catalog, class)
-- kind: table
-- params:
-- tests: unique(catalog, class); not_null(catalog, class)
-- columns: offset_teff_k: catalogue - StarHorse Teff offset (K); sigma_teff_k: the clipped Gaussian's sigma (K)
with offsets as (
    select * from lbl_offsets
),

final as (
    select
        catalog,
        class,
        any_value(mean) filter (where param = 'teff_k') as offset_teff_k,
        any_value(mean) filter (where param = 'logg_dex') as offset_logg_dex,
        any_value(mean) filter (where param = 'mh_dex') as offset_mh_dex,
        any_value(sigma) filter (where param = 'teff_k') as sigma_teff_k,
        any_value(sigma) filter (where param = 'logg_dex') as sigma_logg_dex,
        any_value(sigma) filter (where param = 'mh_dex') as sigma_mh_dex
    from offsets
    group by catalog, class
)

select * from final
