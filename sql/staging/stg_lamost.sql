-- description: LAMOST LRS spectra (headers, completed from the M-type catalogue), with the M-type flag, the luminosity-class hint of the subclass and the observation epoch.
-- grain: one row per obsid
-- kind: view
-- params: xmatch.lamost_epoch_yr
-- tests: unique(obsid); not_null(obsid, epoch_yr, is_m_type); accepted(lum_class_hint, 'dwarf', 'giant')
with headers as (
    select * from landing.lamost_headers
),

catalog as (
    select obsid, gaia_source_id, ra_deg, dec_deg, class, subclass, snr_i, rv_kms, lmjd
    from landing.lamost_catalog
),

joined as (
    select
        h.obsid,
        h.designation,
        coalesce(h.ra_deg, c.ra_deg)::double as ra_deg,
        coalesce(h.dec_deg, c.dec_deg)::double as dec_deg,
        upper(trim(coalesce(h.class, c.class))) as spec_class,
        trim(coalesce(h.subclass, c.subclass)) as subclass,
        h.snr_u, h.snr_g, h.snr_r,
        coalesce(h.snr_i, c.snr_i)::double as snr_i,
        h.snr_z,
        coalesce(h.rv_kms, c.rv_kms)::double as rv_kms,
        coalesce(h.lmjd, c.lmjd) as lmjd,
        h.mjd,
        c.gaia_source_id,
        h.is_star,
        h.data_v
    from headers h
    left join catalog c using (obsid)
),

final as (
    select
        *,
        -- LAMOST 1D pipeline subclasses of M stars: M0..M9, dM*, sdM*, gM* (paper §2.1)
        coalesce(spec_class = 'STAR' and regexp_matches(subclass, '^(sd|d|g)?M([0-9]|$)'), false) as is_m_type,
        case
            when regexp_matches(subclass, '^(sd|d)M') then 'dwarf'
            when regexp_matches(subclass, '^gM') then 'giant'
        end as lum_class_hint,
        -- Julian epoch of the observation: Gaia positions are propagated to it
        coalesce(2000.0 + (coalesce(mjd, lmjd) - 51544.5) / 365.25,
                 getvariable('xmatch.lamost_epoch_yr'))::double as epoch_yr
    from joined
)

select * from final
