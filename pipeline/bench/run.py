"""Run registered benchmarks and write one JSON file per run under bench/results/."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

from . import discover


def machine_info() -> dict:
    versions = {}
    for pkg in ("numpy", "numba", "duckdb", "pyarrow", "astropy", "scikit-learn"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "versions": versions,
    }


def git_revision(cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=cwd, capture_output=True,
                               text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def run_benchmarks(names: list[str] | None, out_dir: Path, echo=print) -> Path:
    """Run the named benchmarks (all when ``names`` is empty); return the JSON path."""
    registry = discover()
    unknown = sorted(set(names or []) - set(registry))
    if unknown:
        raise KeyError(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(sorted(registry))}")
    selected = names or sorted(registry)
    results: dict[str, dict] = {}
    for name in selected:
        echo(f"bench {name} ...")
        t0 = time.perf_counter()
        try:
            figures = registry[name]()
            status = "ok"
        except Exception as exc:  # a broken benchmark must not hide the others' figures
            figures, status = {"error": f"{type(exc).__name__}: {exc}"}, "failed"
        results[name] = {"status": status, "seconds": round(time.perf_counter() - t0, 3),
                         "figures": figures}
        for k, v in figures.items():
            echo(f"  {name}.{k} = {v}")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    payload = {"timestamp": stamp, "git_revision": git_revision(), "machine": machine_info(),
               "benchmarks": results}
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"bench-{stamp}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
    if any(r["status"] != "ok" for r in results.values()):
        echo(f"some benchmarks failed; results in {path}")
    return path
