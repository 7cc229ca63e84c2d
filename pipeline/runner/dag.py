"""The model graph: edges, closures, build order and ``--select`` parsing."""

from __future__ import annotations

import difflib
import heapq
import re
from collections.abc import Iterable

from ..model import LAYERS, Model


def lineage(models: dict[str, Model]) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(upstream, downstream): direct edges between models (``landing.*`` sources are
    upstream entries too, never keys of downstream)."""
    up: dict[str, set[str]] = {n: set(m.depends_on) for n, m in models.items()}
    down: dict[str, set[str]] = {n: set() for n in models}
    for n, m in models.items():
        for d in m.upstream_models:
            if d in down:
                down[d].add(n)
    return up, down


def closure(start: Iterable[str], edges: dict[str, set[str]]) -> set[str]:
    """Every node reachable from ``start`` along ``edges`` (``start`` included)."""
    seen: set[str] = set()
    stack = list(start)
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        stack.extend(edges.get(n, ()))
    return seen


def layer_rank(layer: str) -> int:
    return LAYERS.index(layer) if layer in LAYERS else -1


def topological_order(models: dict[str, Model]) -> tuple[list[str], set[str]]:
    """(order, names in a cycle): Kahn's algorithm, ties broken by layer then name."""
    up = {n: {d for d in m.upstream_models if d in models} for n, m in models.items()}
    _, down = lineage(models)
    indeg = {n: len(up[n]) for n in models}
    heap = [(layer_rank(models[n].layer), n) for n, k in indeg.items() if k == 0]
    heapq.heapify(heap)
    order = []
    while heap:
        _, n = heapq.heappop(heap)
        order.append(n)
        for d in sorted(down[n]):
            indeg[d] -= 1
            if indeg[d] == 0:
                heapq.heappush(heap, (layer_rank(models[d].layer), d))
    cyclic = set(models) - set(order)
    return order + sorted(cyclic, key=lambda n: (layer_rank(models[n].layer), n)), cyclic


def select_models(models: dict[str, Model], select: str | None = None,
                  until_layer: str | None = None) -> set[str]:
    """Names chosen by ``select`` (space/comma separated: ``name``, ``name+``, ``+name``,
    ``+name+``, ``layer:<layer>``), cut at ``until_layer``. Unknown names raise ValueError."""
    up, down = lineage(models)
    if select is None or not select.strip():
        chosen = set(models)
    else:
        chosen = set()
        for token in re.split(r"[,\s]+", select.strip()):
            if not token:
                continue
            if token.startswith("layer:"):
                layer = token.split(":", 1)[1]
                if layer not in LAYERS:
                    raise ValueError(f"unknown layer {layer!r} in --select (layers: {', '.join(LAYERS)})")
                chosen |= {n for n, m in models.items() if m.layer == layer}
                continue
            name = token.strip("+")
            if name not in models:
                near = difflib.get_close_matches(name, list(models), n=3)
                hint = f" (did you mean {', '.join(near)}?)" if near else ""
                raise ValueError(f"unknown model {name!r} in --select{hint}")
            chosen.add(name)
            if token.startswith("+"):
                chosen |= {n for n in closure([name], up) if n in models}
            if token.endswith("+"):
                chosen |= closure([name], down)
    if until_layer is not None:
        if until_layer not in LAYERS:
            raise ValueError(f"unknown layer {until_layer!r} (layers: {', '.join(LAYERS)})")
        limit = LAYERS.index(until_layer)
        chosen = {n for n in chosen if layer_rank(models[n].layer) <= limit}
    return chosen
