"""`mgold bench` (placeholder)."""


def bench() -> None:
    """Run benchmarks."""
