-- description: labelled stars whose label cannot be traced back: source catalogue row missing, offsets not those measured, or a transferred star outside the primary sample.
with sample as (
    select * from lbl_labelled_sample
),

offsets as (
    select catalog, class, param, mean from lbl_offsets
),

final as (
    select s.source_id, 'no catalogue row for its label_source' as reason
    from sample s
    anti join xm_label_catalogs c on c.catalog = s.label_source and c.source_id = s.source_id
    union all
    select s.source_id, 'teff offset differs from lbl_offsets'
    from sample s
    join offsets o on o.catalog = s.label_source and o.class = s.class and o.param = 'teff_k'
    where s.offset_teff_k is distinct from o.mean
    union all
    select s.source_id, 'transferred star not in sel_primary'
    from sample s
    where not s.is_supplement and s.source_id not in (select source_id from sel_primary)
)

select * from final
