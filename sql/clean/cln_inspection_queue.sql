-- description: Bins DBSCAN could not settle, for manual inspection (paper §2.4): one sample only, or no cluster; with whether a person has decided them yet.
-- grain: one row per bin_id
-- kind: table
-- params:
-- tests: unique(bin_id); not_null(bin_id, reason, status); accepted(reason, 'single_sample', 'no_cluster'); accepted(status, 'pending', 'decided')
with clustered as (
    select bin_id, obsid, snr_i, n_clustered, n_clusters from cln_dbscan
),

decisions as (
    select bin_id, count(*) as n_decisions from landing.inspection_decisions group by bin_id
),

bins as (
    select
        bin_id,
        any_value(n_clustered) as n_spectra,
        max(n_clusters) as n_clusters,
        list(obsid order by snr_i desc) as obsids
    from clustered
    group by bin_id
),

final as (
    select
        b.bin_id,
        case when b.n_spectra = 1 then 'single_sample' else 'no_cluster' end as reason,
        b.n_spectra,
        b.obsids,
        coalesce(d.n_decisions, 0) as n_decisions,
        case when d.n_decisions > 0 then 'decided' else 'pending' end as status
    from bins b
    left join decisions d using (bin_id)
    where b.n_spectra = 1 or b.n_clusters = 0
)

select * from final
