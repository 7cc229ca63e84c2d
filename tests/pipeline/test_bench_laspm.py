"""The `laspm` benchmark registers and reports peak_fraction against a GEMM rate measured in the same run."""

from __future__ import annotations

from mgold.pipeline.bench import discover


def test_laspm_benchmark_reports_peak_fraction_and_ratios_on_a_small_workload():
    figures = discover()["laspm"](n_templates=60, n_obs=20, n_twin_templates=4, n_lsq_templates=2, reps=1)
    assert figures["gemm_flops_per_spectrum"] == 2 * 1664 * 60 * (5 + 3 + 2)   # degree 2, template masks
    assert figures["no_template_mask_gemm_flops_per_spectrum"] == 2 * 1664 * 60 * (5 + 3)
    assert 0 < figures["peak_fraction"] and figures["spectra_per_s"] > 0
    assert abs(sum(v for k, v in figures.items() if k.startswith("time_share_")) - 1) < 1e-3
    assert figures["ratio_engine_over_twin"] > 1 and figures["ratio_engine_over_least_squares"] > 1
    assert figures["blas"] and "blas_kernel" in figures
