-- description: The neural-net-cleaned sample (paper §2.5): cln_kept minus the stars the NN cleaning removed (a held-out residual beyond its limits) or could not judge (few good red-grid pixels, non-positive median, NaN label); each survivor with the held-out prediction of the last iteration, the evidence that it stays. A sample too small for the folds passes unjudged (reason too_few_for_nn in cln_nn_predictions, no prediction).
-- grain: one row per obsid
-- kind: table
-- params:
-- tests: unique(obsid); not_null(obsid, bin_id, teff_k, logg_dex, mh_dex, kept_by, nn_iterations)
-- columns: nn_iterations: NN iterations the star took part in (all of them: it survived each); teff_pred_k: last held-out prediction (likewise logg_pred_dex, mh_pred_dex); dteff_k: that prediction - label (likewise dlogg_dex, dmh_dex)
with kept as (
    select * from cln_kept
),

predictions as (
    select * from cln_nn_predictions
),

last_iteration as (
    select max(iteration) as iteration from predictions
),

survivors as (
    -- the stars of the last iteration that it did not remove never left
    select p.*
    from predictions p
    join last_iteration l using (iteration)
    where not p.removed
),

taken_part as (
    select obsid, count(*) as nn_iterations from predictions group by obsid
),

final as (
    select
        k.*,
        t.nn_iterations,
        s.teff_pred_k, s.logg_pred_dex, s.mh_pred_dex,
        s.dteff_k, s.dlogg_dex, s.dmh_dex
    from kept k
    join survivors s using (obsid)
    join taken_part t using (obsid)
)

select * from final
