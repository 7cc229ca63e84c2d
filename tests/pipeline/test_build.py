"""`mgold build` bookkeeping that needs no universe: freshness of synthetic inputs, stage timing."""

from __future__ import annotations

import json

from mgold.pipeline.build import _manifest_fresh, preset_config
from mgold.pipeline.synth.make import generator_version


def _manifest(path, cfg, fmt="parquet", generator=None):
    path.write_text(json.dumps({
        "format": fmt, "generator": generator or generator_version(),
        "config": {k: v for k, v in cfg.flat().items() if k.startswith("synth.")}}))
    return path


def test_inputs_are_fresh_only_for_the_same_config_format_and_generator(tmp_path):
    cfg = preset_config("tiny")
    m = _manifest(tmp_path / "manifest.json", cfg)
    assert _manifest_fresh(m, cfg, "parquet")
    assert not _manifest_fresh(m, cfg, "fits")
    assert not _manifest_fresh(m, cfg.with_overrides({"synth.aspcap.dwarf.teff_k": 1.0}), "parquet")
    assert not _manifest_fresh(_manifest(m, cfg, generator="0" * 64), cfg, "parquet")
    assert not _manifest_fresh(tmp_path / "absent.json", cfg, "parquet")


def test_generator_version_is_stable_and_hex():
    v = generator_version()
    assert v == generator_version() and len(v) == 64 and int(v, 16) >= 0
