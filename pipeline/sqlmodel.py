"""Reading SQL models: ``sql/<layer>/<name>.sql`` files and ``sql/audits/*.sql``.

Each file has a fixed header (``-- key: value`` lines: description, grain, kind,
params, tests, columns) and one SELECT; its dependencies and the config keys it
reads are found in the SQL itself with sqlglot (``analyse_sql``, also used for the
input queries of Python models). Parsing never raises for a broken model: the
problem is stored in ``Model.error`` and reported when the model is built, so one
bad file cannot stop every import.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import sqlglot
from sqlglot import exp

from .model import (PASSIVE_SCHEMAS, RUNTIME_VARIABLES, Model, ModelError, TestSpec, check_dependencies,
                    check_layer_kind, check_params)

HEADER_KEYS = ("description", "grain", "kind", "params", "tests", "columns")


def default_sql_root() -> Path:
    import mgold.sql
    return Path(list(mgold.sql.__path__)[0])


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
    problems += check_layer_kind(layer, kind)
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
    problems += check_params(used)
    problems += check_dependencies(deps)
    try:
        docs = parse_column_docs(header.get("columns", ""))
    except ValueError as e:
        docs = ()
        problems.append(str(e))
    return Model(
        name=name, layer=layer, kind=kind, depends_on=deps, params=tuple(sorted(used)),
        tests=tests, description=header.get("description", ""), grain=header.get("grain", ""),
        column_docs=docs, path=path, sql=body,
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


def parse_column_docs(text: str) -> tuple[tuple[str, str], ...]:
    """``'obsid: LAMOST spectrum id; teff_k: effective temperature (K), from ASPCAP'`` ->
    ((column, doc), ...): the COMMENT ON COLUMN texts of a model (``columns:`` header key)."""
    out = []
    for item in (text or "").split(";"):
        if not item.strip():
            continue
        col, sep, doc = item.partition(":")
        if not sep or not re.fullmatch(r"[a-z_][a-z0-9_]*", col.strip()) or not doc.strip():
            raise ValueError(f"header columns: cannot read {item.strip()!r} (expected column: text; ...)")
        out.append((col.strip(), doc.strip()))
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
    used -= set(RUNTIME_VARIABLES)
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



def parse_sql_models(sql_root: str | Path | None = None) -> list[Model]:
    """Every ``<layer>/<name>.sql`` model file under ``sql_root`` (audits excluded), parsed."""
    root = Path(sql_root) if sql_root is not None else default_sql_root()
    if not root.is_dir():
        return []
    return [parse_model_file(p) for p in sorted(root.glob("*/*.sql")) if p.parent.name != "audits"]
