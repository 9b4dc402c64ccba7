#!/usr/bin/env python3
"""The GPU workloads on this machine, beside a plain torch matmul loop as the reference.

    python bench/gpu.py [--duration 40] [--device auto|cuda|cpu] [--warmup 10] [--workers N]
                        [IDS...]

Each workload (gpu-1 ... gpu-6 by default) runs for a fixed duration in its own process
(`python -m workloads run ID`); from its results document the script prints the primary
throughput, TFLOP/s (exact for gpu-2, estimated for the others), gpu-5's MFU, the peak GPU
memory allocated and reserved, and the mean NVML utilisation of the steady phase (the samples
after the warm-up, the last one dropped). Then, in this process, the reference: a plain matmul
loop, bf16 on CUDA; on the CPU in float32 (the dtype gpu-2 uses there) and in bf16, labelled.

On CUDA it says whether the targets are met: gpu-2 at least 0.85 of the reference matmul
throughput, gpu-5 MFU at least 0.40, every workload at least 80 % NVML utilisation.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ("gpu-1", "gpu-2", "gpu-3", "gpu-4", "gpu-5", "gpu-6")
TARGETS = {"matmul_ratio": 0.85, "mfu": 0.40, "utilisation_pct": 80.0}


def run_workload(
    workload: str, duration: float, device: str, workers: int | None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "workloads", "run", workload, "--duration", str(duration)]
        command += ["--device", device, "--seed", "1", "--results-dir", folder]
        command += ["--workers", str(workers)] if workers else []
        subprocess.run(command, cwd=ROOT, capture_output=True, check=False)
        found = list(Path(folder).glob("*.json"))
        return json.loads(found[0].read_text()) if found else {}


def steady_utilisation(document: dict[str, Any], warmup: float) -> float | None:
    """Mean NVML utilisation of the samples after ``warmup`` seconds, the last one dropped."""
    samples = document["timeseries"]["samples"][:-1]
    readings = [s["gpu_util_pct"] for s in samples if s["t"] >= warmup]
    readings = [value for value in readings if value is not None]
    return statistics.mean(readings) if readings else None


def tflops(document: dict[str, Any]) -> float | None:
    metrics = document["metrics"]
    if metrics["primary"]["unit"] == "TFLOP/s":
        return metrics["primary"]["value"]
    estimated = metrics["secondary"].get("estimated_tflops")
    return estimated["value"] if estimated else None


def secondary(document: dict[str, Any], name: str) -> float | None:
    metric = document["metrics"]["secondary"].get(name)
    return metric["value"] if metric else None


def reference_matmul(device: str, dtype_name: str, n: int, seconds: float) -> float:
    """TFLOP/s of a plain loop of n x n products, timed after a warm-up."""
    import torch

    dtype = getattr(torch, dtype_name)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)

    def synchronize() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    for _ in range(3):
        torch.mm(a, b, out=out)
    synchronize()
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(10):
            torch.mm(a, b, out=out)
        synchronize()
        count += 10
    elapsed = time.perf_counter() - started
    return 2.0 * n**3 * count / elapsed / 1e12


def _format(value: float | None, spec: str) -> str:
    width = spec.split(".", maxsplit=1)[0]
    return format("n/a", f">{width}") if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workloads", nargs="*", default=list(WORKLOADS), metavar="ID")
    parser.add_argument("--duration", type=float, default=40.0, help="seconds per workload")
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds before steady")
    parser.add_argument("--workers", type=int, help="CPU threads, for workloads and reference")
    args = parser.parse_args()

    import torch

    if args.workers:
        torch.set_num_threads(args.workers)

    device = "cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(f"device: {name}; {args.duration:g} s per workload, steady after {args.warmup:g} s")
    header = (
        f"{'workload':<8} {'throughput':>22} {'TFLOP/s':>9} {'MFU':>6} "
        f"{'alloc GiB':>9} {'resv GiB':>9} {'util %':>7}  verified"
    )
    print(header)
    results: dict[str, dict[str, Any]] = {}
    for workload in args.workloads:
        document = run_workload(workload, args.duration, device, args.workers)
        results[workload] = document
        if not document or document["metrics"]["primary"] is None:
            print(f"{workload:<8} failed: {(document.get('error') or {}).get('message', '?')}")
            continue
        primary = document["metrics"]["primary"]
        throughput = f"{primary['value']:.4g} {primary['unit']}"
        print(
            f"{workload:<8} {throughput:>22} {_format(tflops(document), '9.3f')} "
            f"{_format(secondary(document, 'model_flops_utilisation'), '6.3f')} "
            f"{_format(secondary(document, 'gpu_memory_allocated_peak'), '9.2f')} "
            f"{_format(secondary(document, 'gpu_memory_reserved_peak'), '9.2f')} "
            f"{_format(steady_utilisation(document, args.warmup), '7.1f')}  "
            f"{document['verification']['passed']}"
        )

    references = {"bfloat16": 8192} if device == "cuda" else {"float32": 512, "bfloat16": 512}
    measured = {}
    for dtype, n in references.items():
        measured[dtype] = reference_matmul(device, dtype, n, seconds=5.0)
        print(
            f"reference: plain {dtype} matmul loop, n={n}, this process: "
            f"{measured[dtype]:.3f} TFLOP/s"
        )
    compared = "bfloat16" if device == "cuda" else "float32"  # gpu-2's product dtype there
    gpu2 = results.get("gpu-2")
    ratio = None
    if gpu2 and gpu2["metrics"]["primary"]:
        ratio = gpu2["metrics"]["primary"]["value"] / measured[compared]
        print(f"gpu-2 / {compared} reference: {ratio:.3f}")
    if device != "cuda":
        print(
            "targets (gpu-2 >= 0.85 of the reference, gpu-5 MFU >= 0.40, NVML utilisation "
            ">= 80 %) apply on CUDA only"
        )
        return
    _report_targets(results, ratio, args.warmup)


def _report_targets(results: dict[str, dict[str, Any]], ratio: float | None, warmup: float) -> None:
    def verdict(value: float | None, target: float) -> str:
        return "n/a" if value is None else ("met" if value >= target else "NOT met")

    print(
        f"target gpu-2 >= {TARGETS['matmul_ratio']} of the reference: "
        f"{verdict(ratio, TARGETS['matmul_ratio'])}"
    )
    gpu5 = results.get("gpu-5")
    mfu = secondary(gpu5, "model_flops_utilisation") if gpu5 else None
    print(f"target gpu-5 MFU >= {TARGETS['mfu']}: {verdict(mfu, TARGETS['mfu'])}")
    for workload, document in results.items():
        utilisation = steady_utilisation(document, warmup) if document else None
        print(
            f"target {workload} NVML utilisation >= {TARGETS['utilisation_pct']:g} %: "
            f"{verdict(utilisation, TARGETS['utilisation_pct'])}"
        )


if __name__ == "__main__":
    main()
