-- description: the primary sample: candidates inside a measured CMD box, whatever their subclass hint (the CMD decides the class) (paper §2.1.1 dwarfs, §2.1.2 giants).
-- grain: one row per source_id
-- kind: table
-- params: select.dwarf_dist_max_kpc, select.dwarf_abs_g_min_mag, select.dwarf_abs_g_max_mag, select.giant_dist_max_kpc, select.giant_bp_rp_min_mag, select.giant_bp_rp_max_mag
-- tests: unique(source_id); not_null(source_id, obsid, class, cmd_resid_mag); accepted(class, 'dwarf', 'giant')
with candidates as (
    select * from sel_stars where is_candidate
),

fits as (
    select * from sel_cmd_fit
),

in_box as (
    select
        s.*,
        f.class,
        s.abs_g_mag - (f.c0 + f.c1 * s.bp_rp0_mag + f.c2 * s.bp_rp0_mag ^ 2 + f.c3 * s.bp_rp0_mag ^ 3) as cmd_resid_mag,
        f.width_mag
    from candidates s
    join fits f
      on abs(s.abs_g_mag - (f.c0 + f.c1 * s.bp_rp0_mag + f.c2 * s.bp_rp0_mag ^ 2 + f.c3 * s.bp_rp0_mag ^ 3))
         <= f.width_mag
    where (f.class = 'dwarf'
           and s.dist_pc < 1000 * getvariable('select.dwarf_dist_max_kpc')
           and s.abs_g_mag between getvariable('select.dwarf_abs_g_min_mag') and getvariable('select.dwarf_abs_g_max_mag'))
       or (f.class = 'giant'
           and s.dist_pc < 1000 * getvariable('select.giant_dist_max_kpc')
           and s.bp_rp0_mag between getvariable('select.giant_bp_rp_min_mag') and getvariable('select.giant_bp_rp_max_mag'))
),

final as (
    -- a star inside both boxes keeps the one it sits closer to, in units of the box width
    select * exclude (width_mag)
    from in_box
    qualify row_number() over (partition by source_id order by abs(cmd_resid_mag) / width_mag, class) = 1
)

select * from final
