-- description: the primary sample: candidates inside a measured CMD box, whatever their subclass hint (the CMD decides the class) (paper §2.1.1 dwarfs, §2.1.2 giants).
-- grain: one row per source_id
-- kind: table
-- params:
-- tests: unique(source_id); not_null(source_id, obsid, class, cmd_resid_mag); accepted(class, 'dwarf', 'giant')
with eligible as (
    select * from sel_cmd_eligible
),

in_box as (
    select e.*, p.cmd_resid_mag, p.width_mag
    from eligible e
    join sel_cmd_points p using (source_id, class)
    where p.kind = 'star' and abs(p.cmd_resid_mag) <= p.width_mag
),

final as (
    -- a star inside both boxes keeps the one it sits closer to, in units of the box width
    select * exclude (width_mag, colour_origin_mag)
    from in_box
    qualify row_number() over (partition by source_id order by abs(cmd_resid_mag) / width_mag, class) = 1
)

select * from final
