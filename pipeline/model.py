"""What a model is: the types every layer of mgold shares (no behaviour, no I/O).

A model is everything the runner needs to place, build and test one relation: its
header (description, grain, kind, params, tests, column docs), its dependencies
(read from SQL with sqlglot: a SQL model's body, a Python model's input queries)
and a content hash. SQL models are parsed by ``sqlmodel``; Python models are
declared with ``pymodel.python_model``; the runner (``pipeline/runner/``) loads both
into one ``Project`` and builds them.

Module order (a test walks the imports): ``mgold.udfs`` <- ``model``/``sqlmodel``/
``pymodel`` <- ``stages`` <- ``runner`` <- ``build`` <- ``cli``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# Build order of the layers (DESIGN.md "Data flow").
LAYERS = ("staging", "xmatch", "select", "labels", "spectra", "clean", "golden", "laspm", "marts")
KINDS = ("table", "view")
# Bound by the runner but not a config key: never a param, never a staleness input.
RUN_ID_VARIABLE = "run_id"
# Bound per partition while a partitioned Python model builds one (its inputs may filter on it).
PARTITION_VARIABLE = "partition"
RUNTIME_VARIABLES = (RUN_ID_VARIABLE, PARTITION_VARIABLE)
# Schemas a model may read without them being models: landing (ingested), meta (ledger).
SOURCE_SCHEMAS = ("landing",)
PASSIVE_SCHEMAS = ("meta",)
FORBIDDEN_SCHEMA = "truth"
STAGES_PACKAGE = "mgold.pipeline.stages"


class ModelError(Exception):
    """A model that cannot be compiled or built; the message names the model and cause."""


@dataclass(frozen=True)
class TestSpec:
    """One declarative data test from a header: ``unique(a, b)``, ``not_null(a)``,
    ``range(col, lo, hi)``, ``accepted(col, 'x', 'y')``."""

    kind: str
    args: tuple[str, ...]

    __test__ = False            # not a pytest class

    def __str__(self) -> str:
        return f"{self.kind}({', '.join(self.args)})"


@dataclass(frozen=True)
class Model:
    name: str
    layer: str
    kind: str = "table"
    depends_on: tuple[str, ...] = ()   # model names and ``landing.<table>`` sources
    params: tuple[str, ...] = ()       # config keys used (``section.key``): SQL getvariable() + Python reads
    tests: tuple[TestSpec, ...] = ()
    description: str = ""
    grain: str = ""
    column_docs: tuple[tuple[str, str], ...] = ()   # (column, what / unit / source): COMMENT ON
    path: Path | None = None
    sql: str | None = None             # the SELECT body (SQL models)
    sha256: str = ""
    error: str | None = None
    # Python models only
    fn: Callable | None = field(default=None, compare=False, repr=False)
    columns: dict[str, str] | Callable | None = field(default=None, compare=False, repr=False)
    inputs: tuple[tuple[str, str], ...] = ()        # (name, SELECT) read through ctx.table / ctx.batches
    udf_modules: tuple[str, ...] = ()               # mgold.udfs modules its code uses (part of sha256)
    # a partitioned model is built one partition (value of column ``partition_by``) at a time, one
    # per value of the config key ``partitions`` (a tuple); each partition has its own ledger entry
    partition_by: str | None = None
    partitions: str | None = None
    # the partition's own input fingerprint: a SELECT of one value, or a function of the model context
    partition_token: str | Callable | None = field(default=None, compare=False, repr=False)
    partition_inputs: tuple[str, ...] = ()          # inputs only some partitions read (their relations may be absent)
    token_only: tuple[str, ...] = ()                # dependencies and keys only the token / partition inputs read

    @property
    def is_partitioned(self) -> bool:
        return self.partition_by is not None

    @property
    def is_python(self) -> bool:
        return self.fn is not None

    @property
    def sources(self) -> tuple[str, ...]:
        """The ``landing.*`` relations this model reads."""
        return tuple(d for d in self.depends_on if "." in d)

    @property
    def upstream_models(self) -> tuple[str, ...]:
        return tuple(d for d in self.depends_on if "." not in d)


def check_layer_kind(layer: str, kind: str) -> list[str]:
    problems = []
    if layer not in LAYERS:
        problems.append(f"unknown layer {layer!r} (layers: {', '.join(LAYERS)})")
    if kind not in KINDS:
        problems.append(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    return problems


def check_params(keys) -> list[str]:
    from .config import DEFAULT

    flat = DEFAULT.flat()
    bad = sorted(k for k in keys if k not in flat and k not in RUNTIME_VARIABLES)
    return [f"unknown config key(s) {', '.join(bad)}"] if bad else []


def check_dependencies(deps) -> list[str]:
    """Problems with a model's dependencies: truth.* is refused, only landing.* sources."""
    problems = []
    for d in deps:
        schema = d.split(".")[0].lower() if "." in d else ""
        if schema == FORBIDDEN_SCHEMA:
            problems.append(f"reads {d}: truth.* is for evaluation code only")
        elif schema and schema not in SOURCE_SCHEMAS:
            problems.append(f"depends_on {d!r}: only models and landing.* may be dependencies")
    return problems


__all__ = ["LAYERS", "KINDS", "RUN_ID_VARIABLE", "PARTITION_VARIABLE", "RUNTIME_VARIABLES", "SOURCE_SCHEMAS", "PASSIVE_SCHEMAS", "FORBIDDEN_SCHEMA",
           "STAGES_PACKAGE", "ModelError", "TestSpec", "Model", "check_layer_kind", "check_params",
           "check_dependencies"]
