-- description: Bins DBSCAN could not settle (paper §2.4): one sample only, or no cluster; their spectra get suggestions (cln_suggestions) and go to a person (cln_inspection_queue).
-- grain: one row per bin_id
-- kind: table
-- params:
-- tests: unique(bin_id); not_null(bin_id, reason, n_spectra, obsids); accepted(reason, 'single_sample', 'no_cluster')
with clustered as (
    select bin_id, obsid, snr_i, n_clustered, n_clusters from cln_dbscan
),

bins as (
    select
        bin_id,
        any_value(n_clustered) as n_spectra,
        max(n_clusters) as n_clusters,
        list(obsid order by snr_i desc, obsid) as obsids
    from clustered
    group by bin_id
),

final as (
    select
        bin_id,
        case when n_spectra = 1 then 'single_sample' else 'no_cluster' end as reason,
        n_spectra,
        obsids
    from bins
    where n_spectra = 1 or n_clusters = 0
)

select * from final
