-- description: every catalogue that labels a star, and every label source of the labelled sample, is an entry of labels.catalogs (the one registry of §2.2 catalogues).
with registry as (
    select unnest(json_extract_string(getvariable('labels.catalogs'), '$[*].key')) as catalog
),

used as (
    select distinct catalog, 'xm_label_catalogs' as model from xm_label_catalogs
    union all
    select distinct label_source, 'lbl_labelled_sample' from lbl_labelled_sample
)

select u.* from used u anti join registry r using (catalog)
