"""Reading models: SQL files under ``sql/<layer>/`` and ``@python_model`` stages.

A model is everything the runner needs to place, build and test one relation:
its header (description, grain, kind, params, tests), its dependencies (read from
the SQL with sqlglot, or declared by a Python stage) and a content hash. Loading
never raises for a broken model: the problem is stored in ``Model.error`` and
reported when the model is built, so one bad file cannot stop every import.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import inspect
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import sqlglot
from sqlglot import exp

from .config import DEFAULT

# Build order of the layers (DESIGN.md "Data flow").
LAYERS = ("staging", "xmatch", "select", "labels", "spectra", "clean", "golden", "laspm", "marts")
KINDS = ("table", "view")
HEADER_KEYS = ("description", "grain", "kind", "params", "tests")
# Bound by the runner but not a config key: never a param, never a staleness input.
RUN_ID_VARIABLE = "run_id"
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

    def __str__(self) -> str:
        return f"{self.kind}({', '.join(self.args)})"


@dataclass(frozen=True)
class Model:
    name: str
    layer: str
    kind: str = "table"
    depends_on: tuple[str, ...] = ()   # model names and ``landing.<table>`` sources
    params: tuple[str, ...] = ()       # config keys used (``section.key``)
    tests: tuple[TestSpec, ...] = ()
    description: str = ""
    grain: str = ""
    path: Path | None = None
    sql: str | None = None             # the SELECT body (SQL models)
    fn: Callable | None = field(default=None, compare=False, repr=False)  # Python models
    sha256: str = ""
    error: str | None = None

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


# --------------------------------------------------------------------------- python models

_PY_MODELS: dict[str, Model] = {}


def python_model(name: str, layer: str, depends_on: tuple[str, ...] = (),
                 params: tuple[str, ...] = (), kind: str = "table", description: str = "",
                 grain: str = "", tests: str = "") -> Callable:
    """Register ``build(con, cfg, target)`` as a model; it must create relation ``target``.

    Never raises at import time: a bad declaration becomes ``Model.error``.
    """

    def register(fn: Callable) -> Callable:
        problems: list[str] = []
        path = Path(inspect.getsourcefile(fn) or "")
        try:
            source = path.read_bytes()
        except OSError:
            source = inspect.getsource(fn).encode()
        spec_tests: tuple[TestSpec, ...] = ()
        try:
            spec_tests = parse_tests(tests)
        except ValueError as e:
            problems.append(str(e))
        deps = tuple(depends_on)
        for d in deps:
            if d.split(".")[0].lower() == FORBIDDEN_SCHEMA and "." in d:
                problems.append(f"reads {d}: truth.* is for evaluation code only")
            elif "." in d and d.split(".")[0].lower() not in SOURCE_SCHEMAS:
                problems.append(f"depends_on {d!r}: only models and landing.* may be dependencies")
        problems += _check_layer_kind(layer, kind)
        problems += _check_params(params)
        model = Model(
            name=name, layer=layer, kind=kind, depends_on=deps, params=tuple(sorted(set(params))),
            tests=spec_tests, description=description, grain=grain, path=path, fn=fn,
            sha256=hashlib.sha256(source + kind.encode()).hexdigest(),
            error=f"{name}: " + "; ".join(problems) if problems else None,
        )
        _PY_MODELS[f"{fn.__module__}:{name}"] = model
        return fn

    return register


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
    prefix = stages + "."
    out += [m for key, m in _PY_MODELS.items() if key.split(":")[0].startswith(prefix)
            or key.split(":")[0] == stages]
    return out


def _import_failure(modname: str, e: Exception) -> Model:
    return Model(name=modname, layer="", error=f"{modname}: import failed: {type(e).__name__}: {e}")


# --------------------------------------------------------------------------- SQL models

def default_sql_root() -> Path:
    import mgold.sql
    return Path(list(mgold.sql.__path__)[0])


def load_models(sql_root: str | Path | None = None,
                stages: str | None = STAGES_PACKAGE) -> dict[str, Model]:
    """Every model: SQL files under ``sql_root/<layer>/`` plus registered Python stages.

    ``stages`` is the package whose modules are imported to register Python models
    (``None``: SQL only). Broken models come back with ``.error`` set.
    """
    root = Path(sql_root) if sql_root is not None else default_sql_root()
    found: list[Model] = []
    if root.is_dir():
        for path in sorted(root.glob("*/*.sql")):
            layer = path.parent.name
            if layer == "audits":
                continue
            found.append(parse_model_file(path))
    found += _python_models(stages)
    models: dict[str, Model] = {}
    for m in found:
        if m.name in models:
            other = models[m.name]
            where = lambda x: str(x.path) if x.path else x.name  # noqa: E731
            msg = f"{m.name}: defined twice ({where(other)} and {where(m)})"
            models[m.name] = replace(other, error=msg)
            continue
        models[m.name] = m
    return _check_dependencies(models)


def _check_dependencies(models: dict[str, Model]) -> dict[str, Model]:
    """Unknown upstreams and upstreams in a later layer are errors of the reader."""
    out = {}
    for name, m in models.items():
        problems = []
        for d in m.upstream_models:
            up = models.get(d)
            if up is None:
                problems.append(f"reads {d!r}, which is neither a model nor landing.*")
            elif up.layer in LAYERS and m.layer in LAYERS and \
                    LAYERS.index(up.layer) > LAYERS.index(m.layer):
                problems.append(f"reads {d!r} of later layer {up.layer!r}")
        if problems and not m.error:
            m = replace(m, error=f"{name}: " + "; ".join(problems))
        out[name] = m
    return out


def parse_model_file(path: Path) -> Model:
    """One ``sql/<layer>/<name>.sql`` file -> Model (``error`` set when it is broken)."""
    name, layer = path.stem, path.parent.name
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        return Model(name=name, layer=layer, path=path, error=f"{path}: unreadable: {e}")
    header, body = split_header(text)
    problems: list[str] = []
    unknown = sorted(set(header) - set(HEADER_KEYS))
    if unknown:
        problems.append(f"unknown header key(s) {', '.join(unknown)} (known: {', '.join(HEADER_KEYS)})")
    kind = (header.get("kind") or "table").split()[0].lower()
    problems += _check_layer_kind(layer, kind)
    try:
        tests = parse_tests(header.get("tests", ""))
    except ValueError as e:
        tests = ()
        problems.append(str(e))
    deps: tuple[str, ...] = ()
    used: set[str] = set()
    try:
        deps, used = analyse_sql(body)
    except ModelError as e:
        problems.append(str(e))
    declared = set(split_list(header.get("params", "")))
    if not problems and declared != used:
        problems.append(_params_mismatch(declared, used))
    problems += _check_params(used)
    for d in deps:
        if d.startswith(FORBIDDEN_SCHEMA + "."):
            problems.append(f"reads {d}: truth.* is for evaluation code only")
    return Model(
        name=name, layer=layer, kind=kind, depends_on=deps, params=tuple(sorted(used)),
        tests=tests, description=header.get("description", ""), grain=header.get("grain", ""),
        path=path, sql=body,
        sha256=hashlib.sha256((kind + "\n" + body).encode()).hexdigest(),
        error=f"{path}: " + "; ".join(problems) if problems else None,
    )


def _params_mismatch(declared: set[str], used: set[str]) -> str:
    parts = []
    if used - declared:
        parts.append(f"uses {', '.join(sorted(used - declared))} not listed")
    if declared - used:
        parts.append(f"lists {', '.join(sorted(declared - used))} never read")
    return "header params: does not match getvariable() calls: " + "; ".join(parts)


def _check_layer_kind(layer: str, kind: str) -> list[str]:
    problems = []
    if layer not in LAYERS:
        problems.append(f"unknown layer {layer!r} (layers: {', '.join(LAYERS)})")
    if kind not in KINDS:
        problems.append(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    return problems


def _check_params(keys) -> list[str]:
    flat = DEFAULT.flat()
    bad = sorted(k for k in keys if k not in flat and k != RUN_ID_VARIABLE)
    return [f"unknown config key(s) {', '.join(bad)}"] if bad else []


def split_header(text: str) -> tuple[dict[str, str], str]:
    """Leading ``-- key: value`` lines -> dict, and the SQL body after them.

    A header line without ``key:`` whose text is indented continues the previous
    key (long ``tests:`` lists); other comment lines are free text and ignored.
    """
    header: dict[str, str] = {}
    lines = text.splitlines()
    last: str | None = None
    i = 0
    for i, line in enumerate(lines):
        s = line.strip()
        if not s:
            if header:
                last = None
            continue
        if not s.startswith("--"):
            break
        content = s[2:]
        m = re.match(r"\s*([a-z_]+)\s*:\s?(.*)$", content)
        # near-misses of a key ("test:", "param:") are kept so the loader can reject them
        if m and (m.group(1) in HEADER_KEYS
                  or difflib.get_close_matches(m.group(1), HEADER_KEYS, n=1, cutoff=0.75)):
            last = m.group(1)
            header[last] = m.group(2).strip()
        elif last is not None and content.startswith("  ") and content.strip():
            header[last] = (header[last] + " " + content.strip()).strip()
        else:
            last = None
    else:
        i = len(lines)
    body = "\n".join(lines[i:]).strip()
    while body.endswith(";"):
        body = body[:-1].rstrip()
    return header, body


def split_list(text: str) -> list[str]:
    """``'a.b, c.d'`` (or ``none`` / empty) -> ``['a.b', 'c.d']``."""
    items = [t.strip() for t in re.split(r"[,\s]+", text or "") if t.strip()]
    return [] if items in ([], ["none"], ["-"]) else items


_TEST_RE = re.compile(r"\s*(\w+)\s*\(([^()]*)\)\s*(?:;|$)")
_ARG_RE = re.compile(r"\s*('(?:[^']|'')*'|[^,]+?)\s*(?:,|$)")
_TEST_ARITY = {"unique": (1, None), "not_null": (1, None), "range": (3, 3), "accepted": (2, None)}


def parse_tests(text: str) -> tuple[TestSpec, ...]:
    """``'unique(a); range(t, 0, 1)'`` -> TestSpecs; a malformed list raises ValueError."""
    text = (text or "").strip().rstrip(";")
    if not text or text.lower() == "none":
        return ()
    out, pos = [], 0
    while pos < len(text):
        m = _TEST_RE.match(text, pos)
        if not m:
            raise ValueError(f"header tests: cannot read {text[pos:].strip()!r} "
                             f"(expected e.g. unique(col); range(col, lo, hi))")
        kind, raw = m.group(1).lower(), m.group(2)
        args = tuple(a.group(1).strip() for a in _ARG_RE.finditer(raw) if a.group(1).strip())
        if kind not in _TEST_ARITY:
            raise ValueError(f"header tests: unknown test {kind!r} (known: {', '.join(_TEST_ARITY)})")
        lo, hi = _TEST_ARITY[kind]
        if len(args) < lo or (hi is not None and len(args) > hi):
            raise ValueError(f"header tests: {kind}({raw}) has {len(args)} argument(s)")
        out.append(TestSpec(kind, args))
        pos = m.end()
    return tuple(out)


def analyse_sql(body: str) -> tuple[tuple[str, ...], set[str]]:
    """(dependencies, config keys used) of one SELECT, read with sqlglot (dialect duckdb).

    Dependencies are the relations read, minus CTE names and file paths: bare names
    (models) and ``schema.name`` (landing./truth.); ``meta.*`` is ignored.
    """
    if not body.strip():
        raise ModelError("empty model: expected one SELECT")
    try:
        statements = [s for s in sqlglot.parse(body, dialect="duckdb") if s is not None]
    except sqlglot.errors.SqlglotError as e:
        raise ModelError(f"sqlglot cannot parse the SQL: {str(e).splitlines()[0]}") from None
    if len(statements) != 1:
        raise ModelError(f"expected one SELECT statement, found {len(statements)}")
    tree = statements[0]
    if not isinstance(tree, (exp.Query,)):
        raise ModelError(f"expected a SELECT, found {tree.key.upper()}")
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    deps: set[str] = set()
    for t in tree.find_all(exp.Table):
        if not isinstance(t.this, exp.Identifier):
            continue  # table functions: read_parquet(...), range(...)
        name, schema = t.name, t.db.lower()
        if not schema and ("." in name or "/" in name):
            continue  # a file path: 'x.parquet'
        if not schema and name.lower() in ctes:
            continue
        if schema in ("", "main"):
            deps.add(name)
        elif schema in PASSIVE_SCHEMAS:
            continue
        else:
            deps.add(f"{schema}.{name}")
    used: set[str] = set()
    for f in tree.find_all(exp.Func):
        # sqlglot parses getvariable() as an anonymous function; a later release may type it
        anonymous = isinstance(f, exp.Anonymous)
        if (str(f.this) if anonymous else f.sql_name()).lower() != "getvariable":
            continue
        arg = (f.expressions[0] if f.expressions else None) if anonymous else f.this
        if not isinstance(arg, exp.Literal) or not arg.is_string:
            raise ModelError(f"getvariable() needs a string literal, got {f.sql('duckdb')}")
        used.add(arg.this)
    used.discard(RUN_ID_VARIABLE)
    return tuple(sorted(deps)), used


def compile_model_sql(model: Model) -> str:
    """The SELECT of a SQL model, ready for ``create table x as <sql>`` once
    ``bind_config`` has bound its variables. Raises ModelError for a broken model."""
    if model.error:
        raise ModelError(model.error)
    if model.is_python or model.sql is None:
        raise ModelError(f"{model.name}: is a Python model; build it with the runner")
    return model.sql


# --------------------------------------------------------------------------- audits

@dataclass(frozen=True)
class Audit:
    name: str
    path: Path
    description: str
    sql: str
    depends_on: tuple[str, ...]
    error: str | None = None


def load_audits(sql_root: str | Path | None = None) -> list[Audit]:
    """``sql/audits/*.sql``: queries whose result must be empty."""
    root = Path(sql_root) if sql_root is not None else default_sql_root()
    out = []
    for path in sorted((root / "audits").glob("*.sql")):
        header, body = split_header(path.read_text())
        deps: tuple[str, ...] = ()
        error = None
        try:
            deps, _ = analyse_sql(body)
        except ModelError as e:
            error = f"{path}: {e}"
        out.append(Audit(path.stem, path, header.get("description", ""), body, deps, error))
    return out


__all__ = [
    "LAYERS", "Model", "ModelError", "TestSpec", "Audit", "python_model", "load_models",
    "load_audits", "parse_model_file", "split_header", "parse_tests", "analyse_sql",
    "compile_model_sql", "default_sql_root", "RUN_ID_VARIABLE",
]
