-- description: what paper §2.2 (Figs 3-4) says about each catalogue's offset from StarHorse, per class and label; the one place mgold keeps these values (pipeline/paper.py reads this file for the HTML report).
-- grain: one row per (catalog, class, param)
-- kind: table
-- params:
-- tests: unique(catalog, class, param); not_null(catalog, class, param, paper_says, paper_section); accepted(param, 'teff_k', 'logg_dex', 'mh_dex'); accepted(class, 'dwarf', 'giant')
-- columns: catalog: label catalogue (aspcap, ding22, laspm, qiu23); class: dwarf or giant; param: label (teff_k, logg_dex, mh_dex, see mart_parameters); paper_offset: catalogue - StarHorse offset the paper quotes as a number (K for teff_k, dex otherwise), NULL where it gives none; paper_says: the paper's words on this offset; paper_section: where the paper says it
with quoted as (
    select * from (values
        ('aspcap', 'dwarf', 'teff_k', 87.0, '≈ +87 K', '§2.2.1, Fig. 3'),
        ('aspcap', 'dwarf', 'logg_dex', null, 'no significant offset', '§2.2.1, Fig. 3'),
        ('aspcap', 'dwarf', 'mh_dex', null, 'no significant offset', '§2.2.1, Fig. 3'),
        ('ding22', 'dwarf', 'teff_k', null, 'Fig. 3', '§2.2.1, Fig. 3'),
        ('ding22', 'dwarf', 'logg_dex', null, 'Fig. 3', '§2.2.1, Fig. 3'),
        ('ding22', 'dwarf', 'mh_dex', null, 'Fig. 3', '§2.2.1, Fig. 3'),
        ('laspm', 'dwarf', 'teff_k', null, 'no significant shift', '§2.2.1, Fig. 3'),
        ('laspm', 'dwarf', 'logg_dex', null, 'large (Fig. 3)', '§2.2.1, Fig. 3'),
        ('laspm', 'dwarf', 'mh_dex', null, 'large (Fig. 3)', '§2.2.1, Fig. 3'),
        ('aspcap', 'giant', 'teff_k', null, 'Fig. 4', '§2.2.2, Fig. 4'),
        ('aspcap', 'giant', 'logg_dex', null, 'Fig. 4', '§2.2.2, Fig. 4'),
        ('aspcap', 'giant', 'mh_dex', null, 'Fig. 4', '§2.2.2, Fig. 4'),
        ('qiu23', 'giant', 'teff_k', null, '≈ ASPCAP''s (Fig. 4)', '§2.2.2, Fig. 4'),
        ('qiu23', 'giant', 'logg_dex', null, '≈ ASPCAP''s (Fig. 4)', '§2.2.2, Fig. 4'),
        ('qiu23', 'giant', 'mh_dex', null, '≈ ASPCAP''s (Fig. 4)', '§2.2.2, Fig. 4')
    ) t(catalog, class, param, paper_offset, paper_says, paper_section)
),

final as (
    select catalog, class, param, paper_offset::double as paper_offset, paper_says, paper_section from quoted
)

select * from final
