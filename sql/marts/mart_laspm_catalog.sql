-- description: the LASPM catalogue (paper §4): every M-type LAMOST spectrum fitted against each template library, with its LAMOST designation and position, the Gaia source the cross-match found, the labels and their errors, the RV used and the quality flags decoded into booleans, from lsp_results.
-- grain: one row per (library, obsid)
-- kind: table
-- params:
-- tests: unique(library, obsid); not_null(library, obsid, flags, is_fitted, is_edge_of_library, is_poor_fit, is_few_pixels, is_rv_missing, is_rv_fit_poor)
-- columns: library: template library the spectrum was fitted against (golden, model_grid, miles, ...); obsid: LAMOST spectrum id; designation: LAMOST designation (one per star, shared by its repeat visits), from stg_lamost; ra_deg: right ascension (deg, LAMOST); dec_deg: declination (deg, LAMOST);
--   source_id: Gaia DR3 source_id of the counterpart, NULL when unmatched, from xm_lamost_gaia; gaia_match_method: how the counterpart was found (gaia_id, position, none); snr_i: LAMOST i-band S/N;
--   teff_k: effective temperature (K), the weighted mean of the k best templates' labels, NULL when not fitted; logg_dex: surface gravity log g (dex); mh_dex: metallicity [M/H] (dex);
--   teff_err_k: weighted spread of the k best templates' Teff (K); logg_err_dex: their log g spread (dex); mh_err_dex: their [M/H] spread (dex);
--   chi2_nu: reduced chi^2 of the best template; best_template_id: template_id of the best template in its library; n_good_pix: good pixels on the red grid;
--   rv_used_kms: radial velocity the spectrum was shifted by (km/s); rv_source: header (the LAMOST pipeline's RV) or fitted (missing in the header); rv_err_kms: error of a fitted RV (km/s), NULL for header RVs;
--   flags: the LASPM quality bits as fitted (1 edge of library, 2 poor fit, 4 few pixels, 8 RV missing, 16 RV fit poor, 32 no fit); is_fitted: a template was fitted and the labels are set (flag 32 clear);
--   is_edge_of_library: the best templates sit at the edge of the library's label range (flag 1); is_poor_fit: reduced chi^2 above laspm.poor_fit_chi2_nu (flag 2); is_few_pixels: fewer good pixels than laspm.min_good_pix_frac of the grid (flag 4);
--   is_rv_missing: the header had no RV, it was fitted (flag 8); is_rv_fit_poor: the fitted RV is unreliable (flag 16); run_id: the run that fitted it
with results as (
    select * from lsp_results
),

spectra as (
    select obsid, designation, ra_deg, dec_deg from stg_lamost
),

gaia as (
    select obsid, source_id, match_method from xm_lamost_gaia
),

final as (
    select
        r.library, r.obsid, s.designation, s.ra_deg, s.dec_deg,
        g.source_id, g.match_method as gaia_match_method,
        r.snr_i,
        r.teff_k, r.logg_dex, r.mh_dex, r.teff_err_k, r.logg_err_dex, r.mh_err_dex,
        r.chi2_nu, r.best_template_ids[1] as best_template_id, r.n_good_pix,
        r.rv_used_kms, r.rv_source, r.rv_err_kms,
        r.flags,
        -- the bits of mgold.udfs.laspm FLAG_* (tests/sql/test_marts.py checks each against the kernel's)
        r.flags & 32 = 0 as is_fitted,
        r.flags & 1 <> 0 as is_edge_of_library,
        r.flags & 2 <> 0 as is_poor_fit,
        r.flags & 4 <> 0 as is_few_pixels,
        r.flags & 8 <> 0 as is_rv_missing,
        r.flags & 16 <> 0 as is_rv_fit_poor,
        r.run_id
    from results r
    left join spectra s using (obsid)
    left join gaia g using (obsid)
)

select * from final
