-- description: the fitted CMD curve and its box edges sampled over the fitted colour range, for Figs 1-2.
-- grain: one row per (class, bp_rp0_mag sample)
-- kind: table
-- params:
-- tests: not_null(class, bp_rp0_mag, abs_g_fit_mag)
with fits as (
    select * from sel_cmd_fit
),

samples as (
    select f.*, f.bp_rp0_min_mag + i * (f.bp_rp0_max_mag - f.bp_rp0_min_mag) / 100.0 as bp_rp0_mag
    from fits f, range(101) t(i)
),

final as (
    select
        class,
        bp_rp0_mag,
        c0 + c1 * bp_rp0_mag + c2 * bp_rp0_mag ^ 2 + c3 * bp_rp0_mag ^ 3 as abs_g_fit_mag,
        c0 + c1 * bp_rp0_mag + c2 * bp_rp0_mag ^ 2 + c3 * bp_rp0_mag ^ 3 - width_mag as abs_g_upper_mag,
        c0 + c1 * bp_rp0_mag + c2 * bp_rp0_mag ^ 2 + c3 * bp_rp0_mag ^ 3 + width_mag as abs_g_lower_mag
    from samples
)

select * from final
