-- description: mean and 1-sigma of M_G in steps of dereddened BP-RP for the dwarf and giant candidates (paper §2.1.1-2.1.2, error bars of Figs 1-2), after one clip around the step median so stars with a wrong dM/gM subclass do not inflate the box.
-- grain: one row per (class, colour step)
-- kind: table
-- params: select.dwarf_dist_max_kpc, select.dwarf_abs_g_min_mag, select.dwarf_abs_g_max_mag, select.giant_dist_max_kpc, select.giant_bp_rp_min_mag, select.giant_bp_rp_max_mag, select.cmd_color_step_mag, select.cmd_min_stars_per_step, select.cmd_clip_nsigma
-- tests: unique(class, step); not_null(mean_abs_g_mag, sigma_abs_g_mag); accepted(class, 'dwarf', 'giant')
with candidates as (
    select * from sel_stars where is_candidate
),

dwarfs as (
    -- the statistics come from stars LAMOST classed dM / gM (paper §2.1); the box then decides for every candidate
    select 'dwarf' as class, 0.0 as colour_origin_mag, bp_rp0_mag, abs_g_mag
    from candidates
    where lum_class_hint = 'dwarf'
      and dist_pc < 1000 * getvariable('select.dwarf_dist_max_kpc')
      and abs_g_mag between getvariable('select.dwarf_abs_g_min_mag') and getvariable('select.dwarf_abs_g_max_mag')
),

giants as (
    select 'giant' as class, getvariable('select.giant_bp_rp_min_mag') as colour_origin_mag, bp_rp0_mag, abs_g_mag
    from candidates
    where lum_class_hint = 'giant'
      and dist_pc < 1000 * getvariable('select.giant_dist_max_kpc')
      and bp_rp0_mag between getvariable('select.giant_bp_rp_min_mag') and getvariable('select.giant_bp_rp_max_mag')
),

stepped as (
    select *, floor((bp_rp0_mag - colour_origin_mag) / getvariable('select.cmd_color_step_mag'))::int as step
    from (select * from dwarfs union all select * from giants)
),

robust as (
    select class, step, median(abs_g_mag) as median_abs_g_mag, 1.4826 * mad(abs_g_mag) as mad_sigma_mag
    from stepped
    group by class, step
),

clipped as (
    select s.*
    from stepped s
    join robust r using (class, step)
    -- a zero MAD (a handful of identical stars) keeps them all rather than none
    where abs(s.abs_g_mag - r.median_abs_g_mag)
          <= getvariable('select.cmd_clip_nsigma') * greatest(r.mad_sigma_mag, 1e-6)
),

final as (
    select
        class,
        step,
        any_value(colour_origin_mag) + step * getvariable('select.cmd_color_step_mag') as bp_rp0_lo_mag,
        avg(bp_rp0_mag) as mean_bp_rp0_mag,
        avg(abs_g_mag) as mean_abs_g_mag,
        stddev_samp(abs_g_mag) as sigma_abs_g_mag,
        count(*) as n_stars
    from clipped
    group by class, step
    having count(*) >= greatest(getvariable('select.cmd_min_stars_per_step'), 2)
)

select * from final
