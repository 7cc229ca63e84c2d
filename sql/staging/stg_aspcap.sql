-- description: APOGEE DR17 ASPCAP rows with their STARFLAG / ASPCAPFLAG verdict (sentinels already NULL at ingest).
-- grain: one row per apogee_id
-- kind: view
-- params: labels.aspcap_starflag_mask, labels.aspcap_aspcapflag_mask
-- tests: unique(apogee_id); not_null(apogee_id, is_usable)
with aspcap as (
    select * from landing.aspcap
),

final as (
    select
        apogee_id,
        source_id::bigint as source_id,
        ra_deg::double as ra_deg,
        dec_deg::double as dec_deg,
        teff_k::double as teff_k,
        teff_err_k::double as teff_err_k,
        logg_dex::double as logg_dex,
        logg_err_dex::double as logg_err_dex,
        mh_dex::double as mh_dex,
        mh_err_dex::double as mh_err_dex,
        snr::double as apogee_snr,
        starflag,
        aspcapflag,
        -- a missing flag word means the file carried none: nothing to veto
        (coalesce(starflag, 0) & getvariable('labels.aspcap_starflag_mask')) = 0
            and (coalesce(aspcapflag, 0) & getvariable('labels.aspcap_aspcapflag_mask')) = 0
            and teff_k is not null and logg_dex is not null and mh_dex is not null as is_usable
    from aspcap
)

select * from final
