"""Named benchmarks for ``mgold bench``.

A benchmark is a function registered with ``@benchmark("name")`` in a module of
this package; it returns a dict of figures (numbers and short strings). Speed is
reported as ratios against a baseline measured in the same process (same run,
same machine state), plus absolute throughputs for context.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

BENCHMARKS: dict[str, Callable[..., dict]] = {}


def benchmark(name: str):
    def register(fn: Callable[..., dict]) -> Callable[..., dict]:
        BENCHMARKS[name] = fn
        return fn
    return register


def discover() -> dict[str, Callable[..., dict]]:
    """Import every module of this package so their benchmarks register."""
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")
    return BENCHMARKS
