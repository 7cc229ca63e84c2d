-- description: Labelled stars with a processed spectrum, in Teff x log g x [M/H] bins; the first top_n_per_bin by S/N of each bin go on to clustering (paper §2.4).
-- grain: one row per obsid (the top clean.top_n_per_bin of each bin)
-- kind: table
-- params: clean.bin_teff_k, clean.bin_logg_dex, clean.bin_mh_dex, clean.top_n_per_bin
-- tests: unique(obsid); not_null(bin_id, obsid, snr_rank, n_in_bin); range(snr_rank, 1, 100000)
with labelled as (
    select source_id, obsid, snr_i, class, teff_k, logg_dex, mh_dex, label_source
    from lbl_labelled_sample
),

processed as (
    select obsid, n_good_pix, n_pix from spc_cluster_grid
),

binned as (
    select
        l.*,
        p.n_good_pix,
        p.n_pix,
        -- + 1e-6: 4.7 / 0.1 is 46.999... in floating point, and 4.7 belongs to the bin starting at 4.7
        floor(l.teff_k / getvariable('clean.bin_teff_k') + 1e-6)::bigint as teff_idx,
        floor(l.logg_dex / getvariable('clean.bin_logg_dex') + 1e-6)::bigint as logg_idx,
        floor(l.mh_dex / getvariable('clean.bin_mh_dex') + 1e-6)::bigint as mh_idx
    from labelled l
    join processed p using (obsid)
),

ranked as (
    select
        *,
        teff_idx * getvariable('clean.bin_teff_k') as teff_lo_k,
        round(logg_idx * getvariable('clean.bin_logg_dex'), 6) as logg_lo_dex,
        round(mh_idx * getvariable('clean.bin_mh_dex'), 6) as mh_lo_dex,
        row_number() over (partition by teff_idx, logg_idx, mh_idx
                           order by snr_i desc nulls last, obsid) as snr_rank,
        count(*) over (partition by teff_idx, logg_idx, mh_idx) as n_in_bin
    from binned
),

final as (
    select
        -- readable and sortable: t3550_g4.7_m-0.4 is Teff 3550-3600 K, log g 4.7-4.8, [M/H] -0.4 to -0.3
        format('t{}_g{}_m{}', teff_lo_k::bigint, logg_lo_dex::decimal(6, 2)::varchar,
               mh_lo_dex::decimal(6, 2)::varchar) as bin_id,
        teff_lo_k, logg_lo_dex, mh_lo_dex,
        obsid, source_id, class, teff_k, logg_dex, mh_dex, snr_i, label_source,
        n_good_pix, n_pix, snr_rank, n_in_bin,
        least(n_in_bin, getvariable('clean.top_n_per_bin')) as n_clustered
    from ranked
    where snr_rank <= getvariable('clean.top_n_per_bin')
)

select * from final
