"""Ingest: real or synthetic files -> landing tables and Parquet spectra."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class IngestReport:
    """What one ingest call did. ``rejected`` > 0 makes the CLI exit with status 3."""

    files_seen: int = 0
    files_loaded: int = 0
    files_skipped: int = 0        # already ingested (same sha256): idempotent re-runs
    rows_loaded: int = 0
    rejected: int = 0             # files or rows written to meta.ingest_errors
    outputs: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.files_loaded} file(s) loaded, {self.rows_loaded} row(s), "
                f"{self.files_skipped} already ingested, {self.rejected} rejected")
