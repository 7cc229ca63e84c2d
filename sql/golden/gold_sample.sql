-- description: The golden sample (paper §3.2): one row per golden spectrum, the survivors of DBSCAN, inspection (or its suggestions) and the neural-net cleaning, with the LAMOST designation and position, the Gaia source_id, the transferred labels and the catalogue offsets applied to them, the S/N, the parameter bin and the leave-one-out labels and residuals (gold_loo).
-- grain: one row per obsid (one spectrum per star)
-- kind: table
-- params:
-- tests: unique(obsid); unique(source_id); not_null(obsid, source_id, teff_k, logg_dex, mh_dex, label_source, snr_i, bin_id, kept_by)
-- columns: ra_deg: LAMOST right ascension (deg, J2000); dec_deg: LAMOST declination (deg); source_id: Gaia DR3 source_id; label_source: the catalogue whose label was transferred (aspcap, qiu23, ding22, laspm); offset_teff_k: catalogue - StarHorse offset subtracted from the catalogue's Teff (likewise offset_logg_dex, offset_mh_dex); is_supplement: a §2.2.3 supplement star; kept_by: dbscan, inspection or suggestion; teff_loo_k: Teff derived from the other golden spectra (likewise logg_loo_dex, mh_loo_dex); dteff_loo_k: that - label (likewise dlogg_loo_dex, dmh_loo_dex); loo_flags: udfs/laspm.py FLAG_* bits of that fit
with golden as (
    select * from cln_nn_kept
),

labelled as (
    select obsid, offset_teff_k, offset_logg_dex, offset_mh_dex, is_supplement from lbl_labelled_sample
),

headers as (
    select obsid, designation, ra_deg, dec_deg from stg_lamost
),

loo as (
    select
        obsid, teff_loo_k, logg_loo_dex, mh_loo_dex, dteff_loo_k, dlogg_loo_dex, dmh_loo_dex,
        flags as loo_flags, hull_dist_steps
    from gold_loo
),

final as (
    select
        g.obsid,
        h.designation,
        h.ra_deg,
        h.dec_deg,
        g.source_id,
        g.class,
        g.teff_k,
        g.logg_dex,
        g.mh_dex,
        g.label_source,
        l.offset_teff_k,
        l.offset_logg_dex,
        l.offset_mh_dex,
        l.is_supplement,
        g.snr_i,
        g.bin_id,
        g.kept_by,
        o.teff_loo_k, o.logg_loo_dex, o.mh_loo_dex,
        o.dteff_loo_k, o.dlogg_loo_dex, o.dmh_loo_dex,
        o.loo_flags,
        o.hull_dist_steps
    from golden g
    join labelled l using (obsid)
    left join headers h using (obsid)
    left join loo o using (obsid)
)

select * from final
