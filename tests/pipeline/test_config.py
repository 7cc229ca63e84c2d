from __future__ import annotations

import pytest

from mgold.pipeline.config import DEFAULT, parse_assignment


def test_overrides_reach_nested_sections():
    cfg = DEFAULT.with_overrides(["synth.aspcap.dwarf.teff_k=123.5", "clean.cap_per_bin=5"])
    assert cfg.synth.aspcap.dwarf.teff_k == 123.5
    assert cfg.clean.cap_per_bin == 5
    assert DEFAULT.synth.aspcap.dwarf.teff_k != 123.5  # the default is untouched


def test_unknown_key_names_the_choices():
    with pytest.raises(KeyError, match="choices"):
        DEFAULT.with_overrides({"select.snr_min": 5})


def test_wrong_type_is_refused():
    with pytest.raises(ValueError, match="expects int"):
        DEFAULT.with_overrides({"clean.cap_per_bin": 2.5})


def test_tuple_values_accept_comma_lists():
    cfg = DEFAULT.with_overrides(["labels.dwarf_priority=ding22,aspcap"])
    assert cfg.labels.dwarf_priority == ("ding22", "aspcap")


def test_hash_changes_only_with_the_keys_used():
    keys = ["select.snr_i_min"]
    other = DEFAULT.with_overrides({"clean.dbscan_eps": 2.0})
    assert DEFAULT.hash_of(keys) == other.hash_of(keys)
    assert DEFAULT.hash_of(keys) != DEFAULT.with_overrides({"select.snr_i_min": 15}).hash_of(keys)


def test_parse_assignment_requires_equals():
    with pytest.raises(ValueError):
        parse_assignment("select.snr_i_min")
    assert parse_assignment("a.b=1.5") == ("a.b", 1.5)


def test_config_doc_lists_every_key_and_has_not_drifted():
    from mgold.pipeline.config_doc import DOC_PATH, config_markdown

    text = config_markdown()
    missing = [k for k in DEFAULT.flat() if f"| `{k}` |" not in text]
    assert not missing, missing
    assert DOC_PATH.read_text() == text, "docs/config.md drifted: run .venv/bin/python -m mgold.pipeline.config_doc"


def test_config_doc_reads_trailing_and_block_comments():
    from mgold.pipeline.config_doc import _field_comments
    from mgold.pipeline.config import IngestConfig, SelectConfig

    assert _field_comments(IngestConfig)["workers"] == "processes reading FITS files in parallel"
    assert _field_comments(SelectConfig)["snr_i_min"] == "paper §2.1"


def test_the_weighting_choices_are_the_kernels():
    from mgold.pipeline.config import CHOICES
    from mgold.udfs.laspm import WEIGHTINGS

    assert CHOICES["laspm.weighting"] == WEIGHTINGS
