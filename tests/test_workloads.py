"""Each implemented workload at tiny scale: completes in seconds, verified, schema-valid, clean."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TINY, assert_valid, only_document, run_cli

IMPLEMENTED = {
    # id: (primary metric unit, extra flags)
    "io-1": ("MB/s", []),
    "cpu-1": ("GFLOP/s", []),
    "gpu-1": ("samples/s", ["--device", "cpu"]),
}


@pytest.mark.parametrize("workload", IMPLEMENTED)
def test_tiny_run_is_verified_and_valid(workload: str, results: Path) -> None:
    if workload.startswith("gpu"):
        pytest.importorskip("torch")
    unit, extra = IMPLEMENTED[workload]
    flags = ["--iterations", "25", "--duration", "20", "--seed", "11"]
    completed = run_cli("run", workload, *TINY, *flags, "--results-dir", str(results), *extra)
    assert completed.returncode == 0, completed.stderr
    assert completed.seconds < 15
    document = only_document(results)
    assert_valid(document)
    assert (document["status"], document["stop_reason"]) == ("completed", "iterations")
    assert document["verification"]["passed"], document["verification"]
    assert document["verification"]["checks"]
    assert document["metrics"]["iterations"] == 25
    assert document["metrics"]["primary"]["unit"] == unit
    assert document["metrics"]["primary"]["value"] > 0
    left = [path.name for path in results.iterdir()]
    assert left == [f"{workload}_{document['run_id']}.json"], "scratch data was left behind"
    assert f"results: {results}" in completed.stdout


def test_io_workload_reports_latency_percentiles(results: Path) -> None:
    completed = run_cli("run", "io-1", *TINY, "--iterations", "3", "--results-dir", str(results))
    assert completed.returncode == 0, completed.stderr
    secondary = only_document(results)["metrics"]["secondary"]
    for key in ("p50", "p90", "p99", "p999"):
        assert secondary[f"random_read_latency_{key}"]["unit"] == "us"
    assert secondary["read_mb_s"]["value"] > 0


def test_gpu_workload_records_the_cpu_fallback(results: Path) -> None:
    pytest.importorskip("torch")
    completed = run_cli("run", "gpu-1", *TINY, "--iterations", "10", "--results-dir", str(results))
    assert completed.returncode == 0, completed.stderr
    device = only_document(results)["environment"]["device"]
    import torch

    if torch.cuda.is_available():
        assert device["used"] == "cuda"
    else:
        assert device["used"] == "cpu"
        assert "no CUDA device" in device["fallback"]
        assert "no CUDA device" in completed.stderr
