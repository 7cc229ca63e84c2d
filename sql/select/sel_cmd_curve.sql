-- description: the fitted CMD curve and its box edges sampled over the fitted colour range, for Figs 1-2.
-- grain: one row per (class, bp_rp0_mag sample)
-- kind: table
-- params:
-- tests: not_null(class, bp_rp0_mag, abs_g_fit_mag)
with curve as (
    select * from sel_cmd_points where kind = 'curve'
),

final as (
    select
        class,
        bp_rp0_mag,
        abs_g_fit_mag,
        -- brighter is up: the upper edge is the smaller M_G
        abs_g_fit_mag - width_mag as abs_g_upper_mag,
        abs_g_fit_mag + width_mag as abs_g_lower_mag
    from curve
)

select * from final
