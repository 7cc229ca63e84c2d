"""LASPM accuracy against the synthetic truth (what the paper could not measure; paper §4).

Reads ``truth.spectra`` / ``truth.stars`` (evaluation code only). Per library, parameter, class
and S/N_i bin: bias (median of LASPM - truth) and scatter (1.4826 MAD), and for the spectra
whose header RV was missing, how close the fitted RV came to the true one.
"""

from __future__ import annotations

SNR_BINS = (0.0, 10.0, 20.0, 40.0, 1e9)
PARAMS = ("teff_k", "logg_dex", "mh_dex")

ACCURACY_SQL = """
with r as (
    select r.library, r.obsid, r.snr_i, r.teff_k, r.logg_dex, r.mh_dex, s.class,
           s.teff_k as t_teff_k, s.logg_dex as t_logg_dex, s.mh_dex as t_mh_dex
    from lsp_results r
    join truth.spectra t using (obsid)
    join truth.stars s on s.star_id = t.star_id
    where r.flags & 32 = 0 and t.defect in ('none', 'cosmic_ray')
),
long as (
    select library, class, snr_i, 'teff_k' as param, teff_k - t_teff_k as d from r
    union all select library, class, snr_i, 'logg_dex', logg_dex - t_logg_dex from r
    union all select library, class, snr_i, 'mh_dex', mh_dex - t_mh_dex from r
),
binned as (
    select *, case when snr_i < 10 then '<10' when snr_i < 20 then '10-20' when snr_i < 40 then '20-40'
                   else '>=40' end as snr_bin from long where d is not null
)
select library, param, class, snr_bin, count(*) n, median(d) bias, 1.4826 * mad(d) scatter
from binned group by grouping sets ((library, param), (library, param, class), (library, param, snr_bin))
order by library, param, class nulls first, snr_bin nulls first
"""

RV_SQL = """
select r.library, count(*) n, median(r.rv_used_kms - t.rv_true_kms) bias_kms,
       1.4826 * mad(r.rv_used_kms - t.rv_true_kms) scatter_kms,
       avg((r.flags & 16 > 0)::int) frac_poor
from lsp_results r join truth.spectra t using (obsid)
where r.rv_source = 'fitted' and r.flags & 32 = 0
group by 1 order by 1
"""


def has_truth(con) -> bool:
    return con.execute("select count(*) from information_schema.tables where table_schema = 'truth' "
                       "and table_name in ('spectra', 'stars')").fetchone()[0] == 2


def accuracy(con) -> list[dict]:
    """Rows (library, param, class | None, snr_bin | None, n, bias, scatter); None where grouped over."""
    cur = con.execute(ACCURACY_SQL)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def fitted_rv(con) -> list[dict]:
    cur = con.execute(RV_SQL)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]
