-- description: The cleaned sample (paper §2.4): per bin the highest-S/N core members of the main DBSCAN cluster (at most clean.cap_per_bin), plus spectra kept by manual inspection, minus those rejected by it.
-- grain: one row per obsid
-- kind: table
-- params:
-- tests: unique(obsid); not_null(obsid, bin_id, teff_k, logg_dex, mh_dex, kept_by); accepted(kept_by, 'dbscan', 'inspection')
with bins as (
    select * from cln_bins
),

clustered as (
    select obsid, is_kept, keep_rank from cln_keep_rank
),

latest_decisions as (
    -- a later decision about the same spectrum replaces the earlier one
    select obsid, decision
    from landing.inspection_decisions
    qualify row_number() over (partition by obsid order by decided_at desc) = 1
),

chosen as (
    select
        b.*,
        case when d.decision = 'keep' and not c.is_kept then 'inspection' else 'dbscan' end as kept_by,
        c.keep_rank
    from bins b
    join clustered c using (obsid)
    left join latest_decisions d using (obsid)
    where (c.is_kept and coalesce(d.decision, '') <> 'reject') or d.decision = 'keep'
),

final as (
    select
        bin_id, obsid, source_id, class, teff_k, logg_dex, mh_dex, snr_i, label_source,
        teff_lo_k, logg_lo_dex, mh_lo_dex, kept_by, keep_rank
    from chosen
)

select * from final
