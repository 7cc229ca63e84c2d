-- description: every obsid-keyed label catalogue of paper §2.2 (Qiu23 giants, Ding22 dwarfs, the old LASPM, and any catalogue added to labels.catalogs), keyed on the LAMOST obsid; they share one landing table.
-- grain: one row per (catalog, obsid)
-- kind: view
-- params:
-- tests: unique(catalog, obsid); not_null(catalog, obsid)
-- columns: catalog: the catalogue's key in labels.catalogs (its ingest kind)
with catalog as (
    select * from landing.obsid_labels
),

final as (
    -- the column map already typed and named every column (pipeline/ingest/catalog_maps.py)
    select * exclude (_file, _row) from catalog
)

select * from final
