"""No pipeline model may read truth.* (the synthetic ground truth), even indirectly.

Lineage comes from the SQL itself (sqlglot) and from each Python stage's
``depends_on``, over the REAL ``sql/`` tree and ``mgold.pipeline.stages``.
"""

from __future__ import annotations

from mgold.pipeline.runner import closure, lineage, load_models


def test_no_model_reads_truth_directly_or_through_its_upstream():
    models = load_models()
    up, _ = lineage(models)
    leaks = {}
    for name in models:
        truth = sorted(d for d in closure([name], up) if d.lower().startswith("truth."))
        if truth:
            leaks[name] = truth
    assert leaks == {}, f"models reading truth.*: {leaks}"


def test_truth_refusal_is_reported_as_a_model_error():
    """The loader itself refuses truth.* (so a build fails loudly, not just this test)."""
    models = load_models()
    flagged = [m.name for m in models.values() if m.error and "truth." in m.error]
    assert flagged == []


def test_every_real_model_loads_with_an_honest_header():
    """Header params equal the getvariable() calls, tests parse, layers and upstreams exist."""
    broken = {n: m.error for n, m in load_models().items() if m.error}
    assert broken == {}, "\n".join(broken.values())
