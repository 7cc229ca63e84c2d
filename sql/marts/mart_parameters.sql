-- description: the three stellar labels every mart reports (a dimension table for BI tools): the param value used in the long marts, its unit and its symbol.
-- grain: one row per param
-- kind: table
-- params:
-- tests: unique(param); not_null(param, unit, symbol)
-- columns: param: label name as in the long marts (teff_k, logg_dex, mh_dex): the suffix is the unit; unit: unit of every value of this param (K or dex); symbol: the label as the paper writes it; what: what the label is
with labels as (
    select * from (values
        ('teff_k', 'K', 'Teff', 'effective temperature'),
        ('logg_dex', 'dex', 'log g', 'surface gravity, log10 of g in cm/s^2'),
        ('mh_dex', 'dex', '[M/H]', 'metallicity')
    ) t(param, unit, symbol, what)
),

final as (
    select param, unit, symbol, what from labels
)

select * from final
