-- description: Why every star with a catalogue label is, or is not, in the golden sample: for each stage it reached, in order, whether it was kept and why (S/N, photometry, CMD box, delta cuts, spectrum, bin rank, DBSCAN, cap, inspection or suggestion, NN residual, golden), so `select * from gold_history where source_id = X order by stage_order` explains any golden star or any missing one. A star has rows up to the stage that removed it.
-- grain: one row per (source_id, stage) the star reached
-- kind: table
-- params: select.snr_i_min, clean.cap_per_bin, clean.top_n_per_bin, clean.suggestion_min_confidence
-- tests: unique(source_id, stage); not_null(source_id, stage_order, stage, outcome, reason, in_golden); accepted(outcome, 'kept', 'removed', 'queued'); accepted(stage, 'snr', 'photometry', 'cmd_box', 'labels', 'spectrum', 'bin', 'dbscan', 'cap', 'inspection', 'nn', 'golden')
-- columns: stage_order: 1 (S/N) to 11 (golden); outcome: kept (goes on), removed (stops here) or queued (DBSCAN could not settle its bin: inspection decides next); reason: why, with the numbers; in_golden: the star is in gold_sample
with stars as (
    -- every star a label catalogue knows, and every labelled one (the supplement included)
    select s.*
    from sel_stars s
    where s.source_id in (select source_id from xm_label_catalogs)
       or s.source_id in (select source_id from lbl_labelled_sample)
),

primary_sample as (
    select source_id, class from sel_primary
),

supplement as (
    select source_id, class from lbl_supplement
),

labelled as (
    select source_id, obsid, label_source, is_supplement, teff_k, logg_dex, mh_dex from lbl_labelled_sample
),

delta_failures as (
    select
        source_id,
        string_agg(format('{} dTeff {:+.0f} K, dlog g {:+.2f}, d[M/H] {:+.2f}', catalog, d_teff_k, d_logg_dex,
                          d_mh_dex), '; ' order by priority_rank) as failures
    from lbl_shifted
    where not passes_delta
    group by source_id
),

headers as (
    select obsid, rv_kms from stg_lamost
),

spectra as (
    select obsid from spc_cluster_grid
),

bins as (
    select obsid, bin_id, snr_rank, n_in_bin from cln_bins
),

clustered as (
    select d.obsid, d.bin_id, d.is_core, d.in_main_cluster, d.n_clusters, d.nn_dist, d.eps, d.min_pts, k.keep_rank,
           k.is_kept
    from cln_dbscan d
    join cln_keep_rank k using (obsid)
),

unsettled as (
    select unnest(obsids) as obsid, reason from cln_unsettled_bins
),

decisions as (
    select obsid, decision, by_person, note from cln_decisions
),

suggestions as (
    select obsid, suggestion, confidence, note from cln_suggestions
),

kept as (
    select obsid, kept_by from cln_kept
),

nn_removed as (
    select p.obsid, p.iteration, p.reason, p.dteff_k, p.dlogg_dex, p.dmh_dex,
           f.limit_dteff_k, f.limit_dlogg_dex, f.limit_dmh_dex
    from cln_nn_predictions p
    left join cln_nn_folds f on f.iteration = p.iteration and f.fold = p.fold
    where p.removed
),

nn_unjudged as (
    select obsid from cln_nn_predictions where reason = 'too_few_for_nn'
),

nn_kept as (
    select obsid, nn_iterations from cln_nn_kept
),

golden as (
    select obsid from gold_sample
),

stage_snr as (
    select source_id, obsid, 1 as stage_order, 'snr' as stage,
           coalesce(passes_snr, false) as kept,
           case when passes_snr then format('S/N_i {:.1f} >= {}', snr_i, getvariable('select.snr_i_min'))
                when snr_i is null then 'no S/N_i'
                else format('S/N_i {:.1f} < select.snr_i_min {}', snr_i, getvariable('select.snr_i_min')) end
               as reason
    from stars
),

stage_photometry as (
    -- the §2.2.3 supplement takes its stars whatever their photometry and CMD position
    select s.source_id, s.obsid, 2, 'photometry', s.is_candidate or u.source_id is not null,
           case when s.is_candidate then 'passes the photometric quality, binary and variable cuts'
                when u.source_id is not null then 'fails the photometric cuts, taken by the §2.2.3 supplement'
                when s.is_variable then 'a known variable star'
                when not coalesce(s.passes_photometry, false)
                    then format('photometric quality / unresolved-binary cut (ruwe {}, parallax / error {}, C* {})',
                                round(s.ruwe, 2), round(s.parallax_over_error, 1), round(s.c_star, 3))
                else 'no distance or no Gaia photometry' end
    from stars s
    left join supplement u using (source_id)
    where s.passes_snr
),

stage_cmd as (
    select s.source_id, s.obsid, 3, 'cmd_box', p.source_id is not null or u.source_id is not null,
           case when p.source_id is not null then format('inside the {} CMD box', p.class)
                when u.source_id is not null then format('outside the boxes, taken by the §2.2.3 supplement as a {}',
                                                         u.class)
                else 'outside both CMD boxes (dwarfs §2.1.1, giants §2.1.2)' end
    from stars s
    left join primary_sample p using (source_id)
    left join supplement u using (source_id)
    where s.is_candidate or u.source_id is not null
),

stage_labels as (
    select s.source_id, s.obsid, 4, 'labels', l.source_id is not null,
           case when l.source_id is not null
                    then format('label from {}{}: Teff {:.0f} K, log g {:.2f}, [M/H] {:+.2f}', l.label_source,
                                case when l.is_supplement then ' (supplement)' else '' end, l.teff_k, l.logg_dex,
                                l.mh_dex)
                when f.failures is not null then 'every catalogue fails the delta cuts vs StarHorse: ' || f.failures
                else 'no catalogue label with a StarHorse match and measured offsets' end
    from stars s
    left join labelled l using (source_id)
    left join delta_failures f using (source_id)
    where s.source_id in (select source_id from primary_sample) or s.source_id in (select source_id from supplement)
),

stage_spectrum as (
    select l.source_id, l.obsid, 5, 'spectrum', p.obsid is not null,
           case when p.obsid is not null then 'rest frame and SED recalibration done (spc_cluster_grid)'
                when h.rv_kms is null then 'no LAMOST RV: the spectrum cannot be put in the rest frame'
                else 'no spectrum of this obsid was ingested' end
    from labelled l
    left join spectra p using (obsid)
    left join headers h using (obsid)
),

stage_bin as (
    select l.source_id, l.obsid, 6, 'bin', b.obsid is not null,
           case when b.obsid is not null then format('bin {}: S/N rank {} of {}', b.bin_id, b.snr_rank, b.n_in_bin)
                else format('not among the top {} by S/N of its bin', getvariable('clean.top_n_per_bin')) end
    from labelled l
    join spectra p using (obsid)
    left join bins b using (obsid)
),

stage_dbscan as (
    select l.source_id, c.obsid, 7, 'dbscan', c.is_core and c.in_main_cluster,
           case when u.obsid is not null then format('bin not settled ({}): to inspection', u.reason)
                when c.is_core and c.in_main_cluster then 'core member of the main cluster of its bin'
                when c.in_main_cluster then format('border point of the main cluster, not core (fewer than {} '
                                                   'neighbours within eps {})', c.min_pts, c.eps)
                when c.nn_dist is null then 'unusable spectrum (too few good pixels for a distance)'
                else format('DBSCAN noise or a minor cluster: nearest neighbour at D {:.2f} (eps {})', c.nn_dist,
                            c.eps) end
    from labelled l
    join clustered c using (obsid)
    left join unsettled u using (obsid)
),

stage_cap as (
    select l.source_id, c.obsid, 8, 'cap', c.is_kept,
           case when c.is_kept then format('S/N rank {} within the cap of {}', c.keep_rank,
                                           getvariable('clean.cap_per_bin'))
                else format('S/N rank {} beyond the cap of {} per bin', c.keep_rank,
                            getvariable('clean.cap_per_bin')) end
    from labelled l
    join clustered c using (obsid)
    where c.keep_rank > 0
),

stage_inspection as (
    select l.source_id, c.obsid, 9, 'inspection', k.obsid is not null,
           case when d.obsid is not null and d.by_person
                    then format('a person decided: {}{}', d.decision, coalesce(' (' || nullif(d.note, '') || ')', ''))
                when d.obsid is not null then format('accepted suggestion: {} ({})', d.decision, d.note)
                when k.kept_by = 'suggestion' then format('suggestion keep, confidence {:.3f}', g.confidence)
                when g.suggestion = 'keep' and g.confidence >= getvariable('clean.suggestion_min_confidence')
                    then format('suggestion keep, confidence {:.3f}, but beyond the cap of suggested keeps', g.confidence)
                when g.suggestion is not null and g.confidence >= getvariable('clean.suggestion_min_confidence')
                    then format('suggestion {}, confidence {:.3f}{}', g.suggestion, g.confidence,
                                coalesce(': ' || g.note, ''))
                when g.suggestion is not null
                    then format('waiting for a person: suggestion {} of confidence {:.3f} < {}', g.suggestion,
                                g.confidence, getvariable('clean.suggestion_min_confidence'))
                else 'waiting for a person: ' || coalesce(g.note, 'no suggestion') end
    from labelled l
    join clustered c using (obsid)
    left join kept k using (obsid)
    left join decisions d using (obsid)
    left join suggestions g using (obsid)
    where c.obsid in (select obsid from unsettled) or d.obsid is not null
),

stage_nn as (
    select l.source_id, k.obsid, 10, 'nn', r.obsid is null,
           case when u.obsid is not null then 'kept unjudged: fewer usable stars than the NN folds can train on'
                when r.obsid is null then format('held-out residuals within the limits in all {} iteration(s)',
                                                 n.nn_iterations)
                when r.reason = 'nn_residual'
                    then format('iteration {}: held-out residual dTeff {:+.0f} K, dlog g {:+.2f}, d[M/H] {:+.2f} '
                                'beyond the limits {:.0f} K / {:.2f} / {:.2f}', r.iteration, r.dteff_k, r.dlogg_dex,
                                r.dmh_dex, r.limit_dteff_k, r.limit_dlogg_dex, r.limit_dmh_dex)
                else format('never entered the NN: {}', r.reason) end
    from labelled l
    join kept k using (obsid)
    left join nn_removed r using (obsid)
    left join nn_kept n using (obsid)
    left join nn_unjudged u using (obsid)
),

stage_golden as (
    select l.source_id, n.obsid, 11, 'golden', g.obsid is not null,
           case when g.obsid is not null then 'in the golden sample (gold_sample)'
                else 'not in gold_sample' end
    from labelled l
    join nn_kept n using (obsid)
    left join golden g using (obsid)
),

stages as (
    select * from stage_snr
    union all select * from stage_photometry
    union all select * from stage_cmd
    union all select * from stage_labels
    union all select * from stage_spectrum
    union all select * from stage_bin
    union all select * from stage_dbscan
    union all select * from stage_cap
    union all select * from stage_inspection
    union all select * from stage_nn
    union all select * from stage_golden
),

final as (
    select
        s.source_id,
        s.obsid,
        s.stage_order,
        s.stage,
        case when s.stage = 'dbscan' and s.obsid in (select obsid from unsettled) then 'queued'
             when s.kept then 'kept' else 'removed' end as outcome,
        s.reason,
        s.source_id in (select l.source_id from labelled l join golden g using (obsid)) as in_golden
    from stages s
)

select * from final
