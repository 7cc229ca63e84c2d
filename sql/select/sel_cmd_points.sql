-- description: the fitted CMD curve M_G(BP-RP) = c0 + c1 x + c2 x^2 + c3 x^3 and the box half-width, evaluated once for every eligible star (kind 'star') and at 101 colours across each class's fitted range (kind 'curve', for Figs 1-2) (paper §2.1.1-2.1.2).
-- grain: one row per (kind, class, source_id or colour sample)
-- kind: table
-- params:
-- tests: not_null(kind, class, bp_rp0_mag, abs_g_fit_mag, width_mag); accepted(kind, 'star', 'curve')
-- columns: abs_g_fit_mag: M_G of the fitted curve at bp_rp0_mag (mag); cmd_resid_mag: abs_g_mag - abs_g_fit_mag, NULL on the curve (mag); width_mag: the box half-width of the class (mag)
with fits as (
    select * from sel_cmd_fit
),

stars as (
    select 'star' as kind, source_id, class, bp_rp0_mag, abs_g_mag from sel_cmd_eligible
),

curve as (
    select 'curve' as kind, null::bigint as source_id, class,
           bp_rp0_min_mag + i * (bp_rp0_max_mag - bp_rp0_min_mag) / 100.0 as bp_rp0_mag, null::double as abs_g_mag
    from fits, range(101) t(i)
),

evaluated as (
    select
        p.*,
        f.c0 + f.c1 * p.bp_rp0_mag + f.c2 * p.bp_rp0_mag ^ 2 + f.c3 * p.bp_rp0_mag ^ 3 as abs_g_fit_mag,
        f.width_mag
    from (select * from stars union all by name select * from curve) p
    join fits f using (class)
),

final as (
    select *, abs_g_mag - abs_g_fit_mag as cmd_resid_mag from evaluated
)

select * from final
