-- description: the labelled sample: every primary star that took a label by priority transfer, plus the §2.2.3 supplement stars not already in it, with the offsets applied.
-- grain: one row per source_id
-- kind: table
-- params:
-- tests: unique(source_id); not_null(source_id, obsid, snr_i, class, teff_k, logg_dex, mh_dex, label_source, is_supplement, run_id); accepted(class, 'dwarf', 'giant')
with transferred as (
    select t.*, p.obsid, p.snr_i, false as is_supplement
    from lbl_transfer t
    join sel_primary p using (source_id)
),

supplement as (
    select *, true as is_supplement
    from lbl_supplement
    where source_id not in (select source_id from transferred)
),

unioned as (
    select * from transferred
    union all by name select * from supplement
),

final as (
    select
        source_id, obsid, snr_i, class,
        teff_k, logg_dex, mh_dex,
        label_source,
        offset_teff_k, offset_logg_dex, offset_mh_dex,
        is_supplement,
        getvariable('run_id') as run_id
    from unioned
)

select * from final
