-- description: LASPM precision from repeats (paper §4.2): the spread of epsilon per library and parameter in S/N_i steps of laspm.precision_snr_step (Fig. 16), and over all visits with S/N_i >= laspm.precision_snr_min (Fig. 17: the paper's 67 K / 0.07 / 0.14 dex), as the sigma of a Gaussian (1.4826 MAD, robust to the tails) and the plain standard deviation.
-- grain: one row per (library, param, snr_lo); snr_lo NULL is the S/N >= laspm.precision_snr_min summary
-- kind: table
-- params: laspm.precision_snr_step, laspm.precision_snr_min
-- tests: unique(library, param, snr_lo); not_null(library, param, n, sigma)
-- columns: snr_lo: lower edge of the S/N_i step (NULL: every visit at or above laspm.precision_snr_min); sigma: 1.4826 x median absolute epsilon, a Gaussian's sigma (K or dex); std: standard deviation of epsilon (K or dex); n: visits
with eps as (
    select * from lsp_repeat_eps
),

stepped as (
    select library, param, floor(snr_i / getvariable('laspm.precision_snr_step'))
           * getvariable('laspm.precision_snr_step') as snr_lo, eps
    from eps
    where snr_i is not null
    union all
    select library, param, null, eps
    from eps
    where snr_i >= getvariable('laspm.precision_snr_min')
),

final as (
    select
        library, param, snr_lo,
        count(*) as n,
        -- epsilon has zero mean by construction: MAD about 0 is the Gaussian fit's sigma without the tails
        1.4826 * median(abs(eps)) as sigma,
        stddev_samp(eps) as std
    from stepped
    group by all
)

select * from final
