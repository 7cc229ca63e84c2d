"""The `synth` benchmark registers and reports throughput against its in-process baseline."""

from __future__ import annotations

from mgold.pipeline.bench import discover


def test_synth_benchmark_reports_spectra_per_second():
    fn = discover()["synth"]
    res = fn(n_stars=60)
    assert res["n_spectra"] > 60 and res["spectra_per_s"] > 0
    assert res["ratio_synth_over_noise_draw_time"] > 1        # a full spectrum costs more than its noise
