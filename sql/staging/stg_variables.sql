-- description: variable stars collected from Kepler, ZTF, K2, WISE, Gaia, TESS and LAMOST lists (paper §2.1).
-- grain: one row per listed variable (a star may appear in several lists)
-- kind: view
-- params:
-- tests:
with variables as (
    select * from landing.variables
),

final as (
    select
        -- the file name, not its folder: the key must not depend on where the inputs were written
        regexp_extract(_file, '[^/]+$') || ':' || _row as variable_key,
        source_id::bigint as source_id,
        ra_deg::double as ra_deg,
        dec_deg::double as dec_deg,
        var_type,
        survey
    from variables
    where source_id is not null or (ra_deg is not null and dec_deg is not null)
)

select * from final
