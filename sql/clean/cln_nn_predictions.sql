-- description: Every held-out prediction of the neural-net cleaning (paper §2.5, Fig. 8): per iteration, each star's labels, the prediction of the fold network that never saw it, the residual and whether it was removed then; stars that never entered have one row (iteration 0, no fold, no prediction) with the reason.
-- grain: one row per (iteration, obsid)
-- kind: table
-- params:
-- tests: unique(iteration, obsid); not_null(obsid, iteration, removed, n_masked_pix); accepted(reason, 'nn_residual', 'few_good_pixels', 'nonpositive_median', 'nan_label', 'too_few_for_nn')
-- columns: fold: the fold whose network left the star out (NULL: never entered); dteff_k: held-out prediction - label (likewise dlogg_dex, dmh_dex); removed: left the sample in this iteration (or never entered); reason: why it left (NULL while it stays, too_few_for_nn for a star kept unjudged because fewer usable stars than the folds need)
with folds as (
    select * from cln_nn_folds
),

unnested as (
    -- the list columns are parallel: unnest zips them
    select
        iteration,
        fold,
        unnest(obsids) as obsid,
        unnest(teff_k) as teff_k,
        unnest(logg_dex) as logg_dex,
        unnest(mh_dex) as mh_dex,
        unnest(teff_pred_k) as teff_pred_k,
        unnest(logg_pred_dex) as logg_pred_dex,
        unnest(mh_pred_dex) as mh_pred_dex,
        unnest(dteff_k) as dteff_k,
        unnest(dlogg_dex) as dlogg_dex,
        unnest(dmh_dex) as dmh_dex,
        unnest(removed) as removed,
        unnest(reason) as reason,
        unnest(n_masked_pix) as n_masked_pix
    from folds
),

final as (
    select
        obsid,
        iteration,
        nullif(fold, -1) as fold,
        teff_k, logg_dex, mh_dex,
        teff_pred_k, logg_pred_dex, mh_pred_dex,
        dteff_k, dlogg_dex, dmh_dex,
        removed, reason, n_masked_pix
    from unnested
)

select * from final
