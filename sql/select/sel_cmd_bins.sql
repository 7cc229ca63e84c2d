-- description: mean and 1-sigma of M_G in steps of dereddened BP-RP for the dwarf and giant candidates (paper §2.1.1-2.1.2, error bars of Figs 1-2), after dropping stars nearer the other class's median M_G and one clip around the step median, so stars with a wrong dM/gM subclass neither inflate the box nor, where they outnumber the true members of a colour step, drag it onto the other sequence.
-- grain: one row per (class, colour step)
-- kind: table
-- params: select.cmd_color_step_mag, select.cmd_min_stars_per_step, select.cmd_clip_nsigma
-- tests: unique(class, step); not_null(mean_abs_g_mag, sigma_abs_g_mag); accepted(class, 'dwarf', 'giant')
with hinted as (
    -- the statistics come from stars LAMOST classed dM / gM (paper §2.1); the box then decides for every candidate
    select class, colour_origin_mag, bp_rp0_mag, abs_g_mag
    from sel_cmd_eligible
    where lum_class_hint = class
),

stepped as (
    select *, floor((bp_rp0_mag - colour_origin_mag) / getvariable('select.cmd_color_step_mag'))::int as step
    from hinted
),

class_centres as (
    select class, median(abs_g_mag) as centre_abs_g_mag from stepped group by class
),

on_own_sequence as (
    -- dwarfs and giants lie ~10 mag apart in M_G. In red steps, where few true giants survive the quality cuts,
    -- dwarfs LAMOST called gM can be most of a step, and its median alone would follow them onto the dwarf sequence
    select s.*
    from stepped s
    join class_centres own on own.class = s.class
    left join class_centres other on other.class <> s.class
    where other.class is null
       or abs(s.abs_g_mag - own.centre_abs_g_mag) <= abs(s.abs_g_mag - other.centre_abs_g_mag)
),

robust as (
    select class, step, median(abs_g_mag) as median_abs_g_mag, 1.4826 * mad(abs_g_mag) as mad_sigma_mag
    from on_own_sequence
    group by class, step
),

clipped as (
    select s.*
    from on_own_sequence s
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
