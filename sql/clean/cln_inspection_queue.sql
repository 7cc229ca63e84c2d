-- description: Bins DBSCAN could not settle, for manual inspection (paper §2.4), with their suggestions: 'decided' when a person decided a spectrum of the bin, 'suggested' when every spectrum has a recorded decision or a suggestion of at least clean.suggestion_min_confidence (cln_kept applies them), 'pending' otherwise: the remaining manual queue.
-- grain: one row per bin_id
-- kind: table
-- params: clean.suggestion_min_confidence
-- tests: unique(bin_id); not_null(bin_id, reason, status, n_decisions, n_suggested); accepted(reason, 'single_sample', 'no_cluster'); accepted(status, 'pending', 'decided', 'suggested')
-- columns: n_decisions: spectra with a decision in force (cln_decisions: a person's or an accepted suggestion); n_person_decisions: those made by a person; n_suggested: spectra with a suggestion of at least clean.suggestion_min_confidence; n_suggested_keep: of those, suggested keep; confidence: the least confident suggestion of the bin (NULL when a spectrum has none), what `mgold inspect list --sort confidence` sorts by
with unsettled as (
    select * from cln_unsettled_bins
),

spectra as (
    select bin_id, unnest(obsids) as obsid from unsettled
),

per_spectrum as (
    select
        s.bin_id,
        s.obsid,
        d.obsid is not null as decided,
        coalesce(d.by_person, false) as by_person,
        coalesce(g.confidence >= getvariable('clean.suggestion_min_confidence'), false) as confident,
        g.suggestion,
        g.confidence
    from spectra s
    left join cln_decisions d using (obsid)
    left join cln_suggestions g using (obsid)
),

bins as (
    select
        bin_id,
        count(*) filter (where decided) as n_decisions,
        count(*) filter (where by_person) as n_person_decisions,
        count(*) filter (where confident) as n_suggested,
        count(*) filter (where confident and suggestion = 'keep') as n_suggested_keep,
        count(*) filter (where not (decided or confident)) as n_open,
        -- a spectrum without a suggestion makes the bin's confidence unknown
        case when count(*) filter (where suggestion is null) = 0 then min(confidence) end as confidence
    from per_spectrum
    group by bin_id
),

final as (
    select
        u.bin_id,
        u.reason,
        u.n_spectra,
        u.obsids,
        b.n_decisions,
        b.n_person_decisions,
        b.n_suggested,
        b.n_suggested_keep,
        b.confidence,
        case
            when b.n_person_decisions > 0 then 'decided'
            when b.n_open = 0 then 'suggested'
            else 'pending'
        end as status
    from unsettled u
    join bins b using (bin_id)
)

select * from final
