-- description: processed spectra that cannot be what the spectra layer promises: a grid other than the configured clustering grid, no good pixel at all, or a failed SED recalibration (NaN polynomial) kept for clustering.
with spectra as (
    select obsid, loglam0, dloglam, n_pix, n_good_pix, sedcal_coeffs from spc_cluster_grid
),

final as (
    select obsid, 'grid start is not spectra.cluster_wave_min_aa' as reason
    from spectra where abs(loglam0 - log10(getvariable('spectra.cluster_wave_min_aa'))) > 1e-9
    union all
    select obsid, 'grid step is not spectra.dloglam' as reason
    from spectra where abs(dloglam - getvariable('spectra.dloglam')) > 1e-12
    union all
    select obsid, 'no good pixel' as reason from spectra where n_good_pix = 0
    union all
    select s.obsid, 'failed recalibration but kept' as reason
    from spectra s join cln_kept k using (obsid)
    where len(list_filter(s.sedcal_coeffs::double[], lambda c: isnan(c))) > 0
)

select * from final
