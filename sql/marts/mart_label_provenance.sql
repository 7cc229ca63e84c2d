-- description: where each labelled star's labels come from (paper §2.2-2.4): the catalogue that gave them, the offsets applied to put them on the StarHorse scale, whether it came in through the §2.2.3 supplement, and what the cleaning did with its spectrum (kept by DBSCAN, a person or a suggestion, rejected, dropped, or never clustered).
-- grain: one row per source_id of lbl_labelled_sample
-- kind: table
-- params:
-- tests: unique(source_id); not_null(source_id, obsid, class, label_source, is_supplement, clean_outcome); accepted(clean_outcome, 'kept_by_dbscan', 'kept_by_inspection', 'kept_by_suggestion', 'rejected_by_inspection', 'dropped_by_dbscan', 'not_clustered')
-- columns: source_id: Gaia DR3 source_id; obsid: the LAMOST spectrum the star is represented by (highest S/N_i); snr_i: its LAMOST i-band S/N; class: dwarf or giant (CMD box, or ASPCAP log g for the supplement);
--   label_source: catalogue the labels were taken from (aspcap, ding22, laspm, qiu23); n_catalogs: catalogues that labelled the star and passed the delta cuts; catalogs: those catalogues, highest priority first;
--   teff_k: transferred Teff on the StarHorse scale (K); logg_dex: transferred log g (dex); mh_dex: transferred [M/H] (dex);
--   catalog_teff_k: Teff as the catalogue gives it, teff_k + offset_teff_k (K); catalog_logg_dex: log g as the catalogue gives it (dex); catalog_mh_dex: [M/H] as the catalogue gives it (dex);
--   offset_teff_k: catalogue - StarHorse Teff offset subtracted (K), from lbl_offsets; offset_logg_dex: log g offset subtracted (dex); offset_mh_dex: [M/H] offset subtracted (dex);
--   is_supplement: added by the §2.2.3 supplement (high S/N, precise ASPCAP labels, any CMD position); bin_id: the Teff x log g x [M/H] cleaning bin, NULL when not clustered;
--   clean_outcome: kept_by_dbscan, kept_by_inspection (a person's keep), kept_by_suggestion (a confident or accepted cln_suggestions keep), rejected_by_inspection (DBSCAN kept it, a decision in force rejected it), dropped_by_dbscan (not a core member of the main cluster or beyond clean.cap_per_bin), not_clustered (no processed spectrum, or beyond clean.top_n_per_bin of its bin);
--   is_kept: in the cleaned sample (cln_kept); keep_rank: S/N rank among the main cluster's core members (1 = highest, 0 = not a candidate), NULL when not clustered
with labelled as (
    select * from lbl_labelled_sample
),

passing as (
    select source_id, count(*) as n_catalogs, list(catalog order by priority_rank) as catalogs
    from lbl_shifted
    where passes_delta
    group by source_id
),

clustered as (
    select b.obsid, b.bin_id, r.keep_rank, r.is_kept as kept_by_dbscan
    from cln_bins b
    join cln_keep_rank r using (obsid)
),

kept as (
    select obsid, kept_by from cln_kept
),

final as (
    select
        l.source_id, l.obsid, l.snr_i, l.class, l.label_source,
        coalesce(p.n_catalogs, 0) as n_catalogs, p.catalogs,
        l.teff_k, l.logg_dex, l.mh_dex,
        l.teff_k + l.offset_teff_k as catalog_teff_k,
        l.logg_dex + l.offset_logg_dex as catalog_logg_dex,
        l.mh_dex + l.offset_mh_dex as catalog_mh_dex,
        l.offset_teff_k, l.offset_logg_dex, l.offset_mh_dex,
        l.is_supplement,
        c.bin_id,
        case
            when k.kept_by is not null then 'kept_by_' || k.kept_by
            when c.kept_by_dbscan then 'rejected_by_inspection'
            when c.obsid is not null then 'dropped_by_dbscan'
            else 'not_clustered'
        end as clean_outcome,
        k.obsid is not null as is_kept,
        c.keep_rank
    from labelled l
    left join passing p using (source_id)
    left join clustered c using (obsid)
    left join kept k using (obsid)
)

select * from final
