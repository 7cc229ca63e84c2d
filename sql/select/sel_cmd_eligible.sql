-- description: the candidates that may sit in each class's CMD box: inside the class's distance limit and its M_G (dwarfs, paper §2.1.1) or dereddened BP-RP (giants, §2.1.2) window. The statistics of sel_cmd_bins and the box of sel_primary both start here, so the windows are written once.
-- grain: one row per (source_id, class)
-- kind: table
-- params: select.dwarf_dist_max_kpc, select.dwarf_abs_g_min_mag, select.dwarf_abs_g_max_mag, select.giant_dist_max_kpc, select.giant_bp_rp_min_mag, select.giant_bp_rp_max_mag
-- tests: unique(source_id, class); not_null(source_id, class, bp_rp0_mag, abs_g_mag); accepted(class, 'dwarf', 'giant')
-- columns: colour_origin_mag: where the class's colour steps start (dwarfs 0, giants at select.giant_bp_rp_min_mag)
with candidates as (
    select * from sel_stars where is_candidate
),

dwarfs as (
    select 'dwarf' as class, 0.0 as colour_origin_mag, *
    from candidates
    where dist_pc < 1000 * getvariable('select.dwarf_dist_max_kpc')
      and abs_g_mag between getvariable('select.dwarf_abs_g_min_mag') and getvariable('select.dwarf_abs_g_max_mag')
),

giants as (
    select 'giant' as class, getvariable('select.giant_bp_rp_min_mag') as colour_origin_mag, *
    from candidates
    where dist_pc < 1000 * getvariable('select.giant_dist_max_kpc')
      and bp_rp0_mag between getvariable('select.giant_bp_rp_min_mag') and getvariable('select.giant_bp_rp_max_mag')
),

final as (
    select * from dwarfs
    union all by name
    select * from giants
)

select * from final
