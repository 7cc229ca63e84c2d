-- description: DBSCAN's choice in each bin before inspection (paper §2.4): the core members of the bin's main cluster ranked by S/N; the first clean.cap_per_bin are kept.
-- grain: one row per obsid of cln_dbscan
-- kind: table
-- params: clean.cap_per_bin
-- tests: unique(obsid); not_null(bin_id, obsid, keep_rank, is_kept); range(keep_rank, 0, 100000)
-- columns: keep_rank: rank by S/N among the core members of the bin's main cluster (1 = highest S/N, 0 = not a candidate); is_kept: keep_rank between 1 and clean.cap_per_bin
with clustered as (
    select bin_id, obsid, snr_i, snr_rank, is_core, in_main_cluster from cln_dbscan
),

candidates as (
    -- ties in S/N go to the spectrum cln_bins ranked first
    select obsid, row_number() over (partition by bin_id order by snr_i desc, snr_rank) as keep_rank
    from clustered
    where is_core and in_main_cluster
),

final as (
    select
        c.bin_id,
        c.obsid,
        coalesce(k.keep_rank, 0) as keep_rank,
        coalesce(k.keep_rank <= getvariable('clean.cap_per_bin'), false) as is_kept
    from clustered c
    left join candidates k using (obsid)
)

select * from final
