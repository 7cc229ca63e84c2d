"""Every CLI command has help text and is shown in the README (sqlite-utils' test_docs habit)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main

from mgold.pipeline.cli import app

ROOT = Path(__file__).resolve().parents[2]


def _commands(group, prefix: str = "mgold"):
    for name, cmd in sorted(group.commands.items()):
        path = f"{prefix} {name}"
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, path)
        else:
            yield path, cmd


COMMANDS = list(_commands(typer.main.get_command(app)))


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_command_has_help_with_an_example(path, cmd):
    assert cmd.help and cmd.help.strip(), f"{path} has no help text"
    assert "Example:" in cmd.help, f"{path} help should end with an example"


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS])
def test_command_is_mentioned_in_readme(path):
    readme = (ROOT / "README.md").read_text()
    assert re.search(re.escape(path) + r"\b", readme), f"README does not mention `{path}`"
