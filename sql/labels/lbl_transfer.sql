-- description: the label each primary star takes: among catalogues passing the delta cuts, the highest priority (dwarfs ASPCAP > Ding22 > LASPM, giants ASPCAP > Qiu23; paper §2.2.1-2.2.2).
-- grain: one row per source_id
-- kind: table
-- params:
-- tests: unique(source_id); not_null(source_id, label_source, teff_k, logg_dex, mh_dex)
with passing as (
    select * from lbl_shifted where passes_delta
),

final as (
    select
        source_id, class, catalog as label_source, teff_k, logg_dex, mh_dex,
        offset_teff_k, offset_logg_dex, offset_mh_dex
    from passing
    qualify row_number() over (partition by source_id order by priority_rank) = 1
)

select * from final
