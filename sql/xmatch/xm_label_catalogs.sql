-- description: the labels of every catalogue of labels.catalogs (ASPCAP, Qiu23, Ding22, old LASPM, ...) attached to a Gaia source; obsid-keyed catalogues go through the LAMOST x Gaia match, else their own source_id.
-- grain: one row per (catalog, source_id)
-- kind: table
-- params:
-- tests: unique(catalog, source_id); not_null(catalog, source_id, teff_k, logg_dex, mh_dex)
with aspcap as (
    select 'aspcap' as catalog, source_id, null::bigint as obsid, null::double as lamost_snr_i,
           teff_k, teff_err_k, logg_dex, logg_err_dex, mh_dex, mh_err_dex, apogee_snr as quality
    from xm_aspcap
    where source_id is not null
),

obsid_catalogs as (
    select * from stg_obsid_labels
),

obsid_matched as (
    select
        c.catalog,
        coalesce(m.source_id, c.source_id) as source_id,
        c.obsid,
        l.snr_i as lamost_snr_i,
        c.teff_k, c.teff_err_k, c.logg_dex, c.logg_err_dex, c.mh_dex, c.mh_err_dex,
        l.snr_i as quality
    from obsid_catalogs c
    left join xm_lamost_gaia m using (obsid)
    left join stg_lamost l using (obsid)
),

labelled as (
    select * from aspcap
    union all by name select * from obsid_matched
),

final as (
    -- repeat visits of one star: keep the row from the best spectrum (highest S/N), as the paper labels stars
    select * exclude (quality)
    from labelled
    where source_id is not null and teff_k is not null and logg_dex is not null and mh_dex is not null
    qualify row_number() over (partition by catalog, source_id order by quality desc nulls last, obsid) = 1
)

select * from final
