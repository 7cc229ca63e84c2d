-- description: LASPM precision from repeat visits (paper §4.2, Figs 16-17): the spread of the repeat estimator epsilon per template library and label, in S/N_i steps and over every visit above the paper's S/N threshold, from lsp_precision.
-- grain: one row per (library, param, snr_lo, is_summary)
-- kind: table
-- params: laspm.precision_snr_step, laspm.precision_snr_min
-- tests: unique(library, param, snr_lo, is_summary); not_null(library, param, unit, snr_lo, is_summary, n, sigma)
-- columns: library: template library the spectra were fitted against (golden, model_grid, miles, ...); param: label (teff_k, logg_dex, mh_dex); unit: unit of sigma and std (K or dex), from mart_parameters;
--   snr_lo: lower edge of the LAMOST S/N_i range (inclusive); snr_hi: upper edge (exclusive), NULL for the summary row (no upper limit); is_summary: the row covers every visit with S/N_i >= snr_lo (laspm.precision_snr_min, Fig. 17), not one S/N step of laspm.precision_snr_step (Fig. 16);
--   n: visits; sigma: precision, 1.4826 x median absolute epsilon, a Gaussian's sigma without the tails (unit); std: standard deviation of epsilon (unit)
with precision as (
    select * from lsp_precision
),

labels as (
    select param, unit from mart_parameters
),

final as (
    select
        p.library, p.param, l.unit,
        -- lsp_precision marks the summary row with a NULL step; its range starts at the paper's threshold
        coalesce(p.snr_lo, getvariable('laspm.precision_snr_min')) as snr_lo,
        p.snr_lo + getvariable('laspm.precision_snr_step') as snr_hi,
        p.snr_lo is null as is_summary,
        p.n, p.sigma, p.std
    from precision p
    join labels l using (param)
)

select * from final
