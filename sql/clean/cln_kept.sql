-- description: The cleaned sample (paper §2.4): per bin the highest-S/N core members of the main DBSCAN cluster (at most clean.cap_per_bin), plus the spectra of unsettled bins kept by a decision or by a suggestion, minus those rejected. Decisions in force (cln_decisions: a person's, or a suggestion accepted with `mgold inspect accept-suggestions`) come first; a spectrum nobody decided follows its cln_suggestions row when that is at least clean.suggestion_min_confidence confident (at most clean.cap_per_bin suggested keeps per bin, by S/N), so the golden sample is built with the suggestions accepted.
-- grain: one row per obsid
-- kind: table
-- params: clean.suggestion_min_confidence, clean.cap_per_bin
-- tests: unique(obsid); not_null(obsid, bin_id, teff_k, logg_dex, mh_dex, kept_by); accepted(kept_by, 'dbscan', 'inspection', 'suggestion')
-- columns: kept_by: dbscan (main-cluster core member within the cap), inspection (a person's keep), suggestion (an accepted or confident suggestion); keep_rank: cln_keep_rank's rank (0 = not a DBSCAN candidate)
with bins as (
    select * from cln_bins
),

clustered as (
    select obsid, is_kept, keep_rank from cln_keep_rank
),

decided as (
    select obsid, decision, case when by_person then 'inspection' else 'suggestion' end as kept_by
    from cln_decisions
),

confident as (
    -- suggestions nobody decided, confident enough to follow
    select s.obsid, s.bin_id, s.suggestion as decision, s.snr_i
    from cln_suggestions s
    where s.suggestion is not null
      and s.confidence >= getvariable('clean.suggestion_min_confidence')
      and s.obsid not in (select obsid from decided)
),

suggested_keeps as (
    select obsid, 'keep' as decision, 'suggestion' as kept_by
    from confident
    where decision = 'keep'
    qualify row_number() over (partition by bin_id order by snr_i desc, obsid) <= getvariable('clean.cap_per_bin')
),

decisions as (
    select * from decided
    union all select * from suggested_keeps
),

chosen as (
    select
        b.*,
        case when c.is_kept and coalesce(d.decision, '') <> 'reject' then 'dbscan' else d.kept_by end as kept_by,
        c.keep_rank
    from bins b
    join clustered c using (obsid)
    left join decisions d using (obsid)
    where (c.is_kept and coalesce(d.decision, '') <> 'reject') or d.decision = 'keep'
),

final as (
    select
        bin_id, obsid, source_id, class, teff_k, logg_dex, mh_dex, snr_i, label_source,
        teff_lo_k, logg_lo_dex, mh_lo_dex, kept_by, keep_rank
    from chosen
)

select * from final
