-- description: LAMOST M-type stars with a Gaia counterpart, their best spectrum, dereddened photometry, distance and the quality / binary / variable verdicts of paper §2.1 (Qu et al. 2024 criteria; a NULL quality column passes because the catalogue lacks it).
-- grain: one row per source_id
-- kind: table
-- params: select.snr_i_min, select.ruwe_max, select.parallax_over_error_min, select.bp_rp_excess_nsigma_max, select.a_g_per_av, select.a_bp_per_av, select.a_rp_per_av
-- tests: unique(source_id); not_null(source_id, obsid, is_candidate)
with spectra as (
    select l.obsid, l.snr_i, l.lum_class_hint, m.source_id
    from stg_lamost l
    join xm_lamost_gaia m using (obsid)
    where l.is_m_type and m.source_id is not null
),

best_spectrum as (
    select *, count(*) over (partition by source_id) as n_spectra
    from spectra
    qualify row_number() over (partition by source_id order by snr_i desc nulls last, obsid) = 1
),

joined as (
    select
        s.source_id, s.obsid, s.snr_i, s.n_spectra, s.lum_class_hint,
        g.g_mag, g.bp_mag, g.rp_mag, g.bp_rp_mag, g.ruwe, g.parallax_over_error, g.c_star, g.c_star_sigma,
        bj.r_med_photogeo_pc as dist_pc,
        coalesce(d.av_mag, 0.0) as av_mag,
        d.av_mag is not null as has_extinction,
        v.source_id is not null as is_variable
    from best_spectrum s
    join stg_gaia g using (source_id)
    left join stg_bailer_jones bj using (source_id)
    left join stg_dust d using (source_id)
    left join xm_variables v using (source_id)
),

derived as (
    select
        *,
        getvariable('select.a_g_per_av') * av_mag as a_g_mag,
        (getvariable('select.a_bp_per_av') - getvariable('select.a_rp_per_av')) * av_mag as e_bp_rp_mag,
        coalesce(snr_i >= getvariable('select.snr_i_min'), false) as passes_snr,
        coalesce(ruwe < getvariable('select.ruwe_max'), true)
            and coalesce(parallax_over_error > getvariable('select.parallax_over_error_min'), true)
            and coalesce(abs(c_star) < getvariable('select.bp_rp_excess_nsigma_max') * c_star_sigma, true)
            as passes_photometry
    from joined
),

final as (
    select
        * exclude (c_star_sigma),
        g_mag - 5 * log10(dist_pc) + 5 - a_g_mag as abs_g_mag,
        bp_rp_mag - e_bp_rp_mag as bp_rp0_mag,
        passes_snr and passes_photometry and not is_variable
            and dist_pc > 0 and g_mag is not null and bp_rp_mag is not null as is_candidate
    from derived
)

select * from final
