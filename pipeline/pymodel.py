"""Python models: the contract a stage follows (SQLMesh's ``@model(columns=...)`` is the model).

A Python model declares its output ``columns``, reads its ``inputs`` through SQL (their
lineage is read by the same sqlglot code as a SQL model's) and *yields* Arrow record
batches; the runner creates the table, fills it and swaps it in. It never creates,
renames or swaps tables itself, and never opens a connection::

    @python_model(
        name="spc_red_grid", layer="spectra",
        columns={"obsid": "bigint", "flux": "float[1657]"},   # or a function of the config
        inputs={"spectra": "select obsid, flux from ... order by obsid"},
        params=("spectra.batch_spectra",),                     # keys the Python code reads
        description="...", grain="one row per obsid", tests="unique(obsid)")
    def build(ctx):
        for rb in ctx.batches("spectra", ctx.cfg.spectra.batch_spectra):
            yield process(rb)

``ctx`` (built by the runner): ``ctx.cfg`` is a view of the config that refuses keys the
model did not declare (SQL ``getvariable()`` keys of its inputs count as declared);
``ctx.table(name)`` / ``ctx.batches(name, rows)`` read a declared input; ``ctx.run_id``.

The model's hash covers its declaration, its function and every ``mgold.*`` function
or constant that function reaches, and the source files of the ``mgold.udfs`` modules
it uses (``code_fingerprint``): editing a kernel makes exactly its models stale.
Loading never raises: a bad declaration becomes ``Model.error``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import linecache
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .model import Model, ModelError, check_dependencies, check_layer_kind, check_params
from .sqlmodel import analyse_sql, parse_tests

UDFS_PACKAGE = "mgold.udfs"
# infrastructure a model's code may name without it being part of the model (config values are params)
NOT_FOLLOWED = ("mgold.pipeline.config", "mgold.pipeline.model", "mgold.pipeline.pymodel", "mgold.pipeline.sqlmodel")
_REGISTRY: dict[str, Model] = {}          # "module:name" -> Model, filled at import of a stage module


def python_model(name: str, layer: str, *, columns: dict[str, Any] | Callable,
                 inputs: dict[str, str] | None = None, params: tuple[str, ...] = (),
                 kind: str = "table", description: str = "", grain: str = "",
                 tests: str = "", partition_by: str | None = None, partitions: str | None = None,
                 partition_token: str | Callable | None = None,
                 partition_inputs: tuple[str, ...] = ()) -> Callable:
    """Register ``build(ctx) -> Iterable[pa.RecordBatch | pa.Table]`` as model ``name``.

    ``columns``: ``{name: duckdb_type}`` or ``{name: (duckdb_type, doc)}``, or a function
    ``columns(cfg) -> dict`` when a type depends on the config (``float[n]`` of a grid).
    ``inputs``: ``{input_name: SELECT}``; their tables are the model's dependencies.
    ``params``: the config keys the Python code reads (through ``ctx.cfg``).
    ``partition_by`` / ``partitions``: build the table one partition at a time, one per value of the
    config key ``partitions`` (a tuple of strings), rows tagged in column ``partition_by``; the runner
    rebuilds only the stale partitions (``ctx.partition`` and ``getvariable('partition')`` name the one
    being built), deletes those no longer listed (saying so), and ``partition_token`` (a SELECT of one
    value, or ``token(ctx) -> str``, run per partition) adds the partition's own input fingerprint to
    its staleness. ``partition_inputs`` name inputs only some partitions read: their relations need not
    exist, and a change of them makes stale only the partitions whose token sees it.
    """

    def register(fn: Callable) -> Callable:
        problems: list[str] = []
        if not columns:
            problems.append("declares no columns: a Python model must say what it yields")
        if kind != "table":
            problems.append(f"kind {kind!r}: a Python model is always a table")
        spec_tests: tuple = ()
        try:
            spec_tests = parse_tests(tests)
        except ValueError as e:
            problems.append(str(e))
        deps: set[str] = set()
        sql_keys: set[str] = set()
        per_part: set[str] = set()                   # what only the partition inputs read
        unknown = sorted(set(partition_inputs) - set(inputs or {}))
        if unknown:
            problems.append(f"partition_inputs {unknown} are not inputs")
        for input_name, sql in sorted((inputs or {}).items(), key=lambda kv: kv[0] in partition_inputs):
            try:
                d, used = analyse_sql(sql)
            except ModelError as e:
                problems.append(f"input {input_name!r}: {e}")
                continue
            if input_name in partition_inputs:
                per_part |= (set(d) - deps) | (used - sql_keys)
            deps |= set(d)
            sql_keys |= used
        token_only: set[str] = per_part - set(params)
        if isinstance(partition_token, str):
            try:
                d, used = analyse_sql(partition_token)
                # what only the token reads is the partition's own fingerprint, not every partition's input
                token_only |= (set(d) - deps) | (used - sql_keys - set(params))
                deps |= set(d)
                sql_keys |= used
            except ModelError as e:
                problems.append(f"partition_token: {e}")
        if (partition_by is None) != (partitions is None):
            problems.append("give both partition_by and partitions, or neither")
        if partition_by and not callable(columns) and partition_by not in (columns or {}):
            problems.append(f"partition_by {partition_by!r} is not one of its columns")
        problems += check_dependencies(sorted(deps))
        problems += check_layer_kind(layer, kind)
        problems += check_params(set(params) | sql_keys | ({partitions} if partitions else set()))
        docs = () if callable(columns) or not columns else tuple(
            (c, t[1]) for c, t in columns.items() if isinstance(t, tuple) and len(t) > 1)
        udf_modules: tuple[str, ...] = ()
        try:
            code_sha, udf_modules = code_fingerprint(fn, columns if callable(columns) else None,
                                                     partition_token if callable(partition_token) else None)
        except (OSError, TypeError) as e:
            code_sha = ""
            problems.append(f"cannot read its source: {e}")
        declaration = json.dumps({
            "kind": kind, "columns": None if callable(columns) else {c: _type_of(t) for c, t in (columns or {}).items()},
            "inputs": sorted((inputs or {}).items()), "params": sorted(params), "partition_by": partition_by,
            "partition_token": partition_token if isinstance(partition_token, str) else None,
            "partition_inputs": sorted(partition_inputs)}, sort_keys=True)
        model = Model(
            name=name, layer=layer, kind=kind, depends_on=tuple(sorted(deps)),
            params=tuple(sorted(set(params) | sql_keys)), tests=spec_tests, description=description,
            grain=grain, column_docs=docs, path=Path(inspect.getsourcefile(fn) or ""), fn=fn,
            columns=columns, inputs=tuple(sorted((inputs or {}).items())), udf_modules=udf_modules,
            partition_by=partition_by, partitions=partitions, partition_token=partition_token,
            partition_inputs=tuple(partition_inputs), token_only=tuple(sorted(token_only)),
            sha256=hashlib.sha256((declaration + code_sha).encode()).hexdigest(),
            error=f"{name}: " + "; ".join(problems) if problems else None)
        _REGISTRY[f"{fn.__module__}:{name}"] = model
        return fn

    return register


def registered(package: str) -> list[Model]:
    """The Python models registered by the modules of ``package`` (imported by the caller)."""
    return [m for key, m in _REGISTRY.items()
            if key.split(":")[0] == package or key.split(":")[0].startswith(package + ".")]


def _type_of(t: Any) -> str:
    return t[0] if isinstance(t, tuple) else str(t)


def declared_columns(m: Model, cfg) -> dict[str, str]:
    """``{column: duckdb_type}`` of a Python model under ``cfg`` (column docs dropped)."""
    cols = m.columns(cfg) if callable(m.columns) else m.columns
    return {c: _type_of(t) for c, t in (cols or {}).items()}


def declared_column_docs(m: Model, cfg) -> tuple[tuple[str, str], ...]:
    if not callable(m.columns):
        return m.column_docs
    return tuple((c, t[1]) for c, t in m.columns(cfg).items() if isinstance(t, tuple) and len(t) > 1)


# --------------------------------------------------------------------------- code fingerprint

def module_source(module_name: str) -> bytes:
    """The bytes of a module's source file (a test replaces this to simulate an edit)."""
    mod = sys.modules[module_name]
    return Path(mod.__file__).read_bytes()


def code_fingerprint(fn: Callable, *extra: Callable | None) -> tuple[str, tuple[str, ...]]:
    """(sha256, udfs modules) of everything ``fn`` runs that mgold owns.

    Walks from ``fn`` through the globals its code names (functions, classes, methods,
    module attributes): an ``mgold.pipeline`` function or class contributes its source, a
    constant its repr, an ``mgold.udfs`` object its whole module file (kernels are small
    modules; a Numba dispatcher is followed to its module). Library code (numpy, ...) is
    not followed: a version bump is not a model change.
    """
    parts: list[str] = []
    udfs: set[str] = set()
    seen: set[int] = set()
    stack: list[Any] = [f for f in (fn, *extra) if f is not None]
    own = fn.__module__                              # a stage package outside mgold (tests) is followed too
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, _Constant):
            parts.append(obj.text)
            continue
        obj = getattr(obj, "py_func", obj)          # numba dispatcher -> python function
        module = obj.__name__ if isinstance(obj, types.ModuleType) else getattr(obj, "__module__", None) or ""
        if module.startswith(UDFS_PACKAGE):
            udfs.add(module)
            continue
        if (module.startswith("mgold.") or module == own) and module not in NOT_FOLLOWED \
                and isinstance(obj, (types.FunctionType, type)):
            linecache.checkcache(inspect.getsourcefile(obj))   # a long-lived process may see an edited file
            parts.append(f"{module}:{obj.__qualname__}\n{inspect.getsource(obj)}")
            if isinstance(obj, types.FunctionType) and obj.__defaults__:
                parts.append(repr(obj.__defaults__))
            stack.extend(_referenced(obj))
    # udfs modules pull in the udfs modules they use themselves
    pending = sorted(udfs)
    while pending:
        name = pending.pop()
        mod = sys.modules.get(name)
        for v in vars(mod).values() if mod else ():
            other = v.__name__ if isinstance(v, types.ModuleType) else getattr(getattr(v, "py_func", v),
                                                                               "__module__", "") or ""
            if other.startswith(UDFS_PACKAGE) and other not in udfs and other in sys.modules:
                udfs.add(other)
                pending.append(other)
    for name in sorted(udfs):
        parts.append(f"{name}\n{hashlib.sha256(module_source(name)).hexdigest()}")
    return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest(), tuple(sorted(udfs))


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            names |= _code_names(c)
    return names


def _referenced(obj: Any) -> list[Any]:
    """The mgold objects a function or class names: globals, and attributes of modules it uses."""
    if isinstance(obj, type):
        out: list[Any] = []
        for v in vars(obj).values():
            f = v.__func__ if isinstance(v, (staticmethod, classmethod)) else v
            if isinstance(f, property):
                out += [g for g in (f.fget, f.fset) if g is not None]
            elif isinstance(f, types.FunctionType):
                out.append(f)
        return out
    g = obj.__globals__
    names = _code_names(obj.__code__)
    out = []
    for n in names:
        v = g.get(n)
        if v is None:
            continue
        if isinstance(v, types.ModuleType):
            if v.__name__.startswith(UDFS_PACKAGE):
                out.append(v)
            elif v.__name__.startswith("mgold."):
                out += [getattr(v, a) for a in names if hasattr(v, a)]
            continue
        if isinstance(v, (types.FunctionType, type)) or hasattr(v, "py_func"):
            out.append(v)
        elif isinstance(v, (str, int, float, tuple, frozenset, dict)):
            out.append(_Constant(f"{obj.__module__}.{n}", v))
    return out


class _Constant:
    """A module-level constant a model's code reads: it contributes its repr."""

    def __init__(self, name: str, value: Any):
        self.text = f"{name} = {value!r}"


# --------------------------------------------------------------------------- guarded config

class ConfigView:
    """The config as a model sees it: reading a key it did not declare raises ModelError."""

    def __init__(self, obj: Any, allowed: frozenset[str], model: str, prefix: str = ""):
        self._obj, self._allowed, self._model, self._prefix = obj, allowed, model, prefix

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        key = self._prefix + name
        value = getattr(self._obj, name)
        if dataclasses.is_dataclass(value):
            if not any(k == key or k.startswith(key + ".") for k in self._allowed):
                raise ModelError(f"{self._model}: reads config section {key!r} but declares none of its keys "
                                 "in params=")
            return ConfigView(value, self._allowed, self._model, key + ".")
        if key not in self._allowed:
            raise ModelError(f"{self._model}: reads config key {key!r} without declaring it in params=")
        return value

    def __repr__(self) -> str:
        return f"ConfigView({self._model}: {', '.join(sorted(self._allowed))})"


__all__ = ["python_model", "registered", "declared_columns", "declared_column_docs", "code_fingerprint",
           "module_source", "ConfigView", "UDFS_PACKAGE"]
