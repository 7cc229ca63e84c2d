"""The loaded project: every model and audit, read once, with its build order.

``Project.load()`` parses the SQL files under ``sql/``, imports the stage modules of
``mgold.pipeline.stages`` (registering their Python models) and the audits, checks
the dependencies, and orders the models. Every entry point (run, status, tests,
show, the report commands) takes a Project instead of loading the triple again.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..model import LAYERS, STAGES_PACKAGE, Model
from ..pymodel import registered
from ..sqlmodel import Audit, load_audits, parse_sql_models
from .dag import topological_order


@dataclass
class Project:
    models: dict[str, Model]
    audits: list[Audit] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    cyclic: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, sql_root: str | Path | None = None, stages: str | None = STAGES_PACKAGE) -> "Project":
        """Every model: SQL files under ``sql_root/<layer>/`` plus the Python models of the
        ``stages`` package (``None``: SQL only). Broken models come back with ``.error`` set."""
        return cls.of(load_models(sql_root, stages), load_audits(sql_root))

    @classmethod
    def of(cls, models: dict[str, Model], audits: list[Audit] | None = None) -> "Project":
        order, cyclic = topological_order(models)
        return cls(models, audits or [], order, cyclic)


def load_models(sql_root: str | Path | None = None, stages: str | None = STAGES_PACKAGE) -> dict[str, Model]:
    """``{name: Model}`` of the SQL models and the Python models of ``stages``, checked."""
    found = parse_sql_models(sql_root) + _python_models(stages)
    models: dict[str, Model] = {}
    for m in found:
        if m.name in models:
            other = models[m.name]
            where = lambda x: str(x.path) if x.path else x.name  # noqa: E731
            models[m.name] = replace(other, error=f"{m.name}: defined twice ({where(other)} and {where(m)})")
            continue
        models[m.name] = m
    return _check_upstreams(models)


def _python_models(stages: str | None) -> list[Model]:
    if not stages:
        return []
    out: list[Model] = []
    try:
        pkg = importlib.import_module(stages)
    except Exception as e:  # noqa: BLE001 - a broken stage must not stop loading
        return [_import_failure(stages, e)]
    for info in sorted(pkgutil.iter_modules(getattr(pkg, "__path__", [])), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        modname = f"{stages}.{info.name}"
        try:
            importlib.import_module(modname)
        except Exception as e:  # noqa: BLE001
            out.append(_import_failure(modname, e))
    return out + registered(stages)


def _import_failure(modname: str, e: Exception) -> Model:
    return Model(name=modname, layer="", error=f"{modname}: import failed: {type(e).__name__}: {e}")


def _check_upstreams(models: dict[str, Model]) -> dict[str, Model]:
    """Unknown upstreams and upstreams in a later layer are errors of the reader."""
    out = {}
    for name, m in models.items():
        problems = []
        for d in m.upstream_models:
            up = models.get(d)
            if up is None:
                problems.append(f"reads {d!r}, which is neither a model nor landing.*")
            elif up.layer in LAYERS and m.layer in LAYERS and LAYERS.index(up.layer) > LAYERS.index(m.layer):
                problems.append(f"reads {d!r} of later layer {up.layer!r}")
        if problems and not m.error:
            m = replace(m, error=f"{name}: " + "; ".join(problems))
        out[name] = m
    return out
