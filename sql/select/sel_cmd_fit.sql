-- description: polynomial fit of mean M_G against BP-RP per class (first order for dwarfs, third for giants; the highest order the colour steps constrain when there are fewer than order + 1) and the box half-width = the mean 1-sigma of the steps weighted by their stars, all measured (paper §2.1.1-2.1.2).
-- grain: one row per class
-- kind: table
-- params: select.dwarf_fit_order, select.giant_fit_order
-- tests: unique(class); not_null(c0, c1, c2, c3, width_mag)
-- Least squares in an orthogonal basis q1..q3 built by Gram-Schmidt with regr_slope: the coefficient of y on each
-- orthogonal q_k is a simple regression slope, so any order <= 3 needs no matrix solve.
with bins as (
    select
        class,
        mean_bp_rp0_mag as x,
        mean_abs_g_mag as y,
        sigma_abs_g_mag,
        n_stars,
        case class when 'dwarf' then getvariable('select.dwarf_fit_order')
                   else getvariable('select.giant_fit_order') end as fit_order
    from sel_cmd_bins
),

q1 as (
    select *, x - avg(x) over (partition by class) as q1 from bins
),

b2 as (
    -- one colour step: q1 is zero and a slope on it is 0/0 (NaN, not NULL), so it gets none
    select class, avg(x * x) as a2, case when var_pop(q1) > 1e-12 then regr_slope(x * x, q1) else 0 end as b21
    from q1 group by class
),

q2 as (
    select q1.*, x * x - b2.a2 - coalesce(b2.b21, 0) * q1.q1 as q2
    from q1 join b2 using (class)
),

b3 as (
    -- with fewer than three colour steps q2 is zero up to rounding: a slope on it would be rounding noise
    -- blown up (c0 ~ 1e15 with two steps), so x^3 takes no q2 component and q3 vanishes as well
    select class, avg(x ^ 3) as a3,
           case when var_pop(q1) > 1e-12 then regr_slope(x ^ 3, q1) else 0 end as b31,
           case when var_pop(q2) > 1e-12 then regr_slope(x ^ 3, q2) else 0 end as b32
    from q2 group by class
),

q3 as (
    select q2.*, x ^ 3 - b3.a3 - b3.b31 * q2.q1 - b3.b32 * q2.q2 as q3
    from q2 join b3 using (class)
),

gammas as (
    -- a basis polynomial beyond the configured order, or one the data cannot constrain, gets no weight
    select
        class,
        any_value(fit_order) as fit_order,
        avg(y) as y_mean,
        avg(x) as m1,
        case when any_value(fit_order) >= 1 and var_pop(q1) > 1e-12 then regr_slope(y, q1) else 0 end as g1,
        case when any_value(fit_order) >= 2 and var_pop(q2) > 1e-12 then regr_slope(y, q2) else 0 end as g2,
        case when any_value(fit_order) >= 3 and var_pop(q3) > 1e-12 then regr_slope(y, q3) else 0 end as g3,
        -- the mean 1-sigma of the steps weighted by their stars: a sparse edge step (a handful of stars,
        -- truncated by the M_G limits) would otherwise narrow the box as much as a full one, and more of
        -- them clear cmd_min_stars_per_step the larger the sample, so the box would shrink with sample size
        sum(sigma_abs_g_mag * n_stars) / sum(n_stars) as width_mag,
        count(*) as n_steps,
        sum(n_stars) as n_stars,
        min(x) as bp_rp0_min_mag,
        max(x) as bp_rp0_max_mag
    from q3
    group by class
),

monomial as (
    -- expand the orthogonal basis into c0 + c1 x + c2 x^2 + c3 x^3
    select
        g.*,
        b2.a2, b2.b21, b3.a3, b3.b31, b3.b32,
        coalesce(b21, 0) * m1 - a2 as q2_0
    from gammas g join b2 using (class) join b3 using (class)
),

final as (
    select
        class,
        fit_order,
        y_mean - g1 * m1 + g2 * q2_0 + g3 * (b31 * m1 - a3 - b32 * q2_0) as c0,
        g1 - g2 * coalesce(b21, 0) + g3 * (-b31 + b32 * coalesce(b21, 0)) as c1,
        g2 - g3 * b32 as c2,
        g3 as c3,
        width_mag,
        n_steps,
        n_stars,
        bp_rp0_min_mag,
        bp_rp0_max_mag
    from monomial
)

select * from final
