"""Shared fixtures. Real-data tests skip cleanly when ../shared/data/real is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """``../shared/data/real``; skips the test when it is absent (fresh machine)."""
    if not REAL.is_dir():
        pytest.skip(f"real data not found at {REAL} (../shared is absent)")
    return REAL


@pytest.fixture()
def warehouse(tmp_path) -> Path:
    """Path of a fresh, not yet created warehouse file in a temp dir."""
    return tmp_path / "w.duckdb"


@pytest.fixture(scope="session")
def tiny_build(tmp_path_factory):
    """A warehouse built end to end from the ``tiny`` synthetic preset (once per session).

    Returns the BuildSummary (``.warehouse`` is the path). Tests must open it read-only or
    copy it: other tests share it.
    """
    from mgold.pipeline.build import build, preset_config

    wh = tmp_path_factory.mktemp("tiny") / "tiny.duckdb"
    return build(wh, preset="tiny", cfg=preset_config("tiny"), echo=lambda _msg: None)


@pytest.fixture()
def stage_package(tmp_path, monkeypatch):
    """A throwaway stages package on sys.path: ``write(module, source)`` adds a module, returns the
    package name (pass it as ``Project.load(stages=...)``)."""
    import textwrap
    import uuid

    name = f"mg_stages_{uuid.uuid4().hex[:8]}"
    pkg = tmp_path / "pkgs" / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))

    def write(module: str, source: str) -> str:
        (pkg / f"{module}.py").write_text(textwrap.dedent(source))
        return name
    return write
