-- description: Gaia EDR3 sources with colours, the corrected BP/RP flux excess C* and its 1-sigma scatter (Riello et al. 2021).
-- grain: one row per source_id
-- kind: view
-- params:
-- tests: unique(source_id); not_null(source_id, ra_deg, dec_deg, ref_epoch_yr)
with gaia as (
    select * from landing.gaia
),

typed as (
    select
        source_id::bigint as source_id,
        ra_deg::double as ra_deg,
        dec_deg::double as dec_deg,
        -- EDR3 positions are at J2016.0 when the file omits ref_epoch
        coalesce(ref_epoch_yr, 2016.0)::double as ref_epoch_yr,
        parallax_mas, parallax_error_mas,
        parallax_mas / nullif(parallax_error_mas, 0) as parallax_over_error,
        pmra_masyr, pmdec_masyr,
        g_mag, bp_mag, rp_mag,
        bp_mag - rp_mag as bp_rp_mag,
        ruwe,
        bp_rp_excess_factor
    from gaia
),

final as (
    select
        *,
        -- Riello et al. (2021) eq. 6 and Table 2: excess expected for a source of this colour
        bp_rp_excess_factor - case
            when bp_rp_mag < 0.5 then 1.154360 + 0.033772 * bp_rp_mag + 0.032277 * bp_rp_mag ^ 2
            when bp_rp_mag < 4.0 then 1.162004 + 0.011464 * bp_rp_mag + 0.049255 * bp_rp_mag ^ 2
                                        - 0.005879 * bp_rp_mag ^ 3
            else 1.057572 + 0.140537 * bp_rp_mag
        end as c_star,
        -- Riello et al. (2021) eq. 18: 1-sigma scatter of C* for well-behaved sources at this G
        0.0059898 + 8.817481e-12 * g_mag ^ 7.618399 as c_star_sigma
    from typed
)

select * from final
