-- description: the golden sample (paper §3.2) for BI tools: one row per golden spectrum with its position, Gaia source, transferred labels and their provenance (catalogue, offset removed, how it was kept), the leave-one-out labels and residuals of Fig. 8, and whether the spectrum is a template of the 'golden' LASPM library (laspm.golden_subset).
-- grain: one row per obsid (one spectrum per star)
-- kind: table
-- params:
-- tests: unique(obsid); not_null(obsid, source_id, class, teff_k, logg_dex, mh_dex, label_source, snr_i, bin_id, kept_by, is_laspm_template)
-- columns: obsid: LAMOST spectrum id; designation: LAMOST designation; ra_deg: right ascension (deg, J2000, LAMOST); dec_deg: declination (deg, LAMOST); source_id: Gaia DR3 source_id;
--   class: dwarf or giant (the CMD box of paper §2.1); teff_k: transferred effective temperature (K, on the StarHorse scale); logg_dex: transferred surface gravity log g (dex); mh_dex: transferred metallicity [M/H] (dex);
--   label_source: the catalogue the labels came from (aspcap, qiu23, ding22, laspm); offset_teff_k: catalogue - StarHorse Teff offset subtracted (K); offset_logg_dex: log g offset subtracted (dex); offset_mh_dex: [M/H] offset subtracted (dex); is_supplement: a §2.2.3 high-precision supplement star;
--   snr_i: LAMOST i-band S/N; bin_id: the 50 K x 0.1 x 0.1 dex parameter bin (paper §2.4); kept_by: what kept the spectrum in its bin: dbscan, inspection (a person's decision) or suggestion (an accepted inspection suggestion);
--   teff_loo_k: Teff LASPM derives from the other golden spectra (K, leave-one-out, Fig. 8); logg_loo_dex: leave-one-out log g (dex); mh_loo_dex: leave-one-out [M/H] (dex); dteff_loo_k: leave-one-out - label Teff (K); dlogg_loo_dex: leave-one-out - label log g (dex); dmh_loo_dex: leave-one-out - label [M/H] (dex);
--   loo_flags: LASPM quality bits of the leave-one-out fit (1 edge of library, 2 poor fit, 4 few pixels, 8 RV missing, 16 RV fit poor, 32 no fit); is_loo_edge_of_library: the leave-one-out fit leant on templates of the library's hull (flag 1: the Fig. 9 edge effect);
--   hull_dist_steps: distance inside the convex hull of the golden labels (bin steps of 50 K, 0.1, 0.1 dex, 0 on the hull, NaN when the labels span fewer than three dimensions); is_laspm_template: the spectrum is a template of the 'golden' library LASPM fits (all golden spectra, or the best S/N per bin under laspm.golden_subset = best_per_bin)
with golden as (
    select * from gold_sample
),

templates as (
    select template_id as obsid from lsp_library where library = 'golden'
),

final as (
    select
        g.*,
        (g.loo_flags & 1) <> 0 as is_loo_edge_of_library,
        t.obsid is not null as is_laspm_template
    from golden g
    left join templates t using (obsid)
)

select * from final
