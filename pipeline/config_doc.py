"""docs/config.md: every key of the typed config, its default and its comment, generated.

Run ``python -m mgold.pipeline.config_doc`` after changing ``pipeline/config.py``; a
test fails when the file drifts. Comments come from the source of each dataclass: a
field's trailing ``# ...`` comment, else the comment line(s) just above it.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
from pathlib import Path

from .config import DEFAULT

DOC_PATH = Path(__file__).resolve().parents[1] / "docs" / "config.md"
_FIELD = re.compile(r"^\s+(\w+)\s*:\s*[^=#]+?(?:=.*?)?(?:#\s*(.*))?$")


def _field_comments(cls) -> dict[str, str]:
    """{field: comment} read from the class source: the comment block above a run of fields
    (until a blank line), then the field's own trailing comment."""
    out: dict[str, str] = {}
    block: list[str] = []
    in_comment = False
    for line in inspect.getsource(cls).splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            block = block if in_comment else []
            block.append(stripped.lstrip("#").strip())
            in_comment = True
            continue
        in_comment = False
        if not stripped:
            block = []
            continue
        m = _FIELD.match(line)
        if m and not stripped.startswith(('"""', "def ", "@", "return")):
            out[m.group(1)] = " — ".join(x for x in (" ".join(block), (m.group(2) or "").strip()) if x)
    return out


def _rows(obj, prefix: str) -> list[tuple[str, object, str]]:
    rows = []
    notes = _field_comments(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            rows += _rows(value, key + ".")
        else:
            rows.append((key, value, notes.get(f.name, "")))
    return rows


def _fmt(value) -> str:
    if isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
        # a registry: one record per line
        return "<br>".join("`" + json.dumps(dataclasses.asdict(v)) + "`" for v in value)
    if isinstance(value, tuple):
        value = list(value)
    return "`" + json.dumps(value) + "`"


def config_markdown() -> str:
    lines = [
        "# Configuration keys",
        "",
        "Generated from `pipeline/config.py` by `python -m mgold.pipeline.config_doc`; a test fails"
        " when this file drifts. Override any key with `--set section.key=value` (values parsed as"
        " JSON, e.g. `--set clean.dbscan_eps=2.0`, `--set labels.dwarf_priority='[\"ding22\",\"laspm\"]'`);"
        " SQL models read them with `getvariable('section.key')`; every run records the values it used"
        " in `meta.run_parameters`. Offsets between catalogues are never configured: the pipeline"
        " measures them (`lbl_offsets`). The `synth.*` keys shape the synthetic universe only"
        " (`synth.<catalog>.<class>.<param>` are the offsets it *injects*).",
        "",
    ]
    for section in dataclasses.fields(DEFAULT):
        obj = getattr(DEFAULT, section.name)
        doc = (type(obj).__doc__ or "").strip()
        lines += [f"## `{section.name}`", ""]
        if doc and not doc.startswith(type(obj).__name__ + "("):
            lines += [doc, ""]
        lines += ["| key | default | note |", "|---|---|---|"]
        for key, value, note in _rows(obj, section.name + "."):
            note = note.replace("|", r"\|")           # a literal pipe would end the cell
            lines.append(f"| `{key}` | {_fmt(value)} | {note} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    DOC_PATH.parent.mkdir(parents=True, exist_ok=True)
    DOC_PATH.write_text(config_markdown())
    print(f"wrote {DOC_PATH}")
