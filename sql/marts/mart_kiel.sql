-- description: the points of the Kiel diagrams (log g against Teff, coloured by [M/H]): the cleaned sample of paper §2.4 (Fig. 10, after DBSCAN and inspection), the golden sample of §3.2 (after the neural-net cleaning) and every spectrum LASPM fitted, per template library (Fig. 14).
-- grain: one row per (sample, library, obsid)
-- kind: table
-- params:
-- tests: unique(sample, library, obsid); not_null(sample, obsid, teff_k, logg_dex, mh_dex); accepted(sample, 'cleaned', 'golden', 'laspm')
-- columns: sample: which diagram the point belongs to: cleaned (cln_kept, labels transferred from the catalogues), golden (gold_sample, the same labels after the neural-net cleaning) or laspm (mart_laspm_catalog, labels fitted); library: template library of a LASPM point (golden, model_grid, ...), NULL for the cleaned and golden samples;
--   obsid: LAMOST spectrum id; source_id: Gaia DR3 source_id, NULL when unmatched; class: dwarf or giant (CMD box) for the cleaned and golden samples, NULL for LASPM; teff_k: effective temperature (K); logg_dex: surface gravity log g (dex); mh_dex: metallicity [M/H] (dex), the colour of the diagram; snr_i: LAMOST i-band S/N
with cleaned as (
    select 'cleaned' as sample, null::varchar as library, obsid, source_id, class, teff_k, logg_dex, mh_dex, snr_i
    from cln_kept
),

golden as (
    select 'golden' as sample, null::varchar as library, obsid, source_id, class, teff_k, logg_dex, mh_dex, snr_i
    from gold_sample
),

laspm as (
    select 'laspm' as sample, library, obsid, source_id, null::varchar as class, teff_k, logg_dex, mh_dex, snr_i
    from mart_laspm_catalog
    where is_fitted and teff_k is not null and logg_dex is not null and mh_dex is not null
),

final as (
    select * from cleaned
    union all by name
    select * from golden
    union all by name
    select * from laspm
)

select * from final
