"""`mgold synth` through typer's CliRunner."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from mgold.pipeline.cli import app

runner = CliRunner()


def test_make_writes_a_manifest_with_overrides(tmp_path):
    out = tmp_path / "u"
    res = runner.invoke(app, ["synth", "make", "--preset", "tiny", "--seed", "5", "--out", str(out),
                              "--set", "synth.n_stars=40", "--set", "synth.laspm.dwarf.logg_dex=0.61"])
    assert res.exit_code == 0, res.output
    m = json.loads((out / "manifest.json").read_text())
    assert m["seed"] == 5 and m["config"]["synth.laspm.dwarf.logg_dex"] == 0.61


def test_make_refuses_unknown_keys_and_formats_with_one_line(tmp_path):
    res = runner.invoke(app, ["synth", "make", "--out", str(tmp_path), "--set", "synth.nope=1"])
    assert res.exit_code == 1 and "unknown config key 'synth.nope'" in res.output
    res = runner.invoke(app, ["synth", "make", "--out", str(tmp_path), "--format", "hdf5"])
    assert res.exit_code == 1 and "unknown spectra format" in res.output


def test_validate_without_real_data_says_so(tmp_path):
    res = runner.invoke(app, ["synth", "validate", "--real", str(tmp_path / "absent")])
    assert res.exit_code == 1 and "real data folder not found" in res.output


def test_every_synth_command_has_help_with_an_example():
    for cmd in ("make", "validate"):
        res = runner.invoke(app, ["synth", cmd, "--help"])
        assert res.exit_code == 0 and "Example:" in res.output
