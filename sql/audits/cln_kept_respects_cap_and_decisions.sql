-- description: cleaned-sample rows that break the cleaning rules: more DBSCAN-kept spectra in a bin than clean.cap_per_bin, a spectrum kept although a decision in force rejected it, more suggested keeps in a bin than the cap, a kept spectrum that is not a core member of its bin's main cluster, or one from outside cln_bins.
with kept as (
    select * from cln_kept
),

clustered as (
    select obsid, is_core, in_main_cluster from cln_dbscan
),

rejected as (
    select obsid from cln_decisions where decision = 'reject'
),

over_cap as (
    select bin_id, null::bigint as obsid, 'bin over clean.cap_per_bin' as reason
    from kept where kept_by = 'dbscan'
    group by bin_id having count(*) > getvariable('clean.cap_per_bin')
),

over_cap_suggested as (
    select bin_id, null::bigint as obsid, 'suggested keeps over clean.cap_per_bin' as reason
    from kept k where kept_by = 'suggestion' and obsid not in (select obsid from cln_decisions)
    group by bin_id having count(*) > getvariable('clean.cap_per_bin')
),

kept_rejected as (
    select bin_id, obsid, 'kept although rejected by inspection' as reason
    from kept where obsid in (select obsid from rejected)
),

not_core as (
    select k.bin_id, k.obsid, 'kept by dbscan but not a core member of the main cluster' as reason
    from kept k join clustered c using (obsid)
    where k.kept_by = 'dbscan' and not (c.is_core and c.in_main_cluster)
),

orphans as (
    select bin_id, obsid, 'not in cln_bins' as reason
    from kept where obsid not in (select obsid from cln_bins)
),

final as (
    select * from over_cap
    union all select * from over_cap_suggested
    union all select * from kept_rejected
    union all select * from not_core
    union all select * from orphans
)

select * from final
