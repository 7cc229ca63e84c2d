-- description: labelled stars with a missing label, a label outside the physical range of M stars, or more than one row.
with sample as (
    select * from lbl_labelled_sample
),

duplicates as (
    select source_id from sample group by source_id having count(*) > 1
),

final as (
    select source_id, teff_k, logg_dex, mh_dex, 'duplicate star' as reason
    from sample where source_id in (select source_id from duplicates)
    union all
    select source_id, teff_k, logg_dex, mh_dex, 'label missing or outside 2000-5000 K, -1..6 dex, -3..1.5 dex'
    from sample
    where not coalesce(teff_k between 2000 and 5000 and logg_dex between -1 and 6 and mh_dex between -3 and 1.5, false)
)

select * from final
