#!/usr/bin/env python3
"""The GPU workloads on this machine, beside a plain torch matmul loop as the reference.

    python bench/gpu.py [--duration 40] [--device auto|cuda|cpu] [--warmup 10] [--workers N]
                        [--reference-seconds 5] [IDS...]

Each workload (gpu-1 ... gpu-6 by default) runs for a fixed duration in its own process
(`python -m workloads run ID`); from its results document the script prints the primary
throughput, TFLOP/s (exact for gpu-2, estimated for the others), gpu-5's MFU, the peak GPU
memory allocated and reserved, and the mean NVML utilisation of the steady phase (the samples
after the warm-up, the last one dropped). Then, in this process, the reference: a plain matmul
loop, bf16 on CUDA; on the CPU in float32 (the dtype gpu-2 uses there) and in bf16, labelled.

On CUDA it says whether the targets are met: gpu-2 at least 0.85 of the reference matmul
throughput, gpu-5 MFU at least 0.40, every workload at least 80 % NVML utilisation; and, for
each workload, that it completed and verified on CUDA in bf16, with its peak reserved memory
within its allocator cap and its wall time within max(1 s, 3 %) of the duration asked.

--json PATH writes the table as JSON (rewritten after each workload, so a run cut short keeps
what it measured), with the Python, torch, CUDA, cuDNN and driver versions and the device;
--documents DIR keeps each workload's results document there as ID.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import shutil
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
DURATION_TOLERANCE = (1.0, 0.03)  # seconds, fraction: the larger of the two
GiB = 2**30


def run_workload(
    workload: str,
    duration: float,
    device: str,
    workers: int | None,
    documents: Path | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The workload's results document ({} when it left none), and how its process ended."""
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "workloads", "run", workload, "--duration", str(duration)]
        command += ["--device", device, "--seed", "1", "--results-dir", folder]
        command += ["--progress", "off"] + (["--workers", str(workers)] if workers else [])
        started = time.perf_counter()
        process = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        ended = {
            "returncode": process.returncode,
            "process_seconds": round(time.perf_counter() - started, 3),
        }
        if process.returncode:
            ended["stderr_tail"] = process.stderr[-4000:]
        found = list(Path(folder).glob("*.json"))
        if found and documents:
            documents.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(found[0], documents / f"{workload}.json")
        return (json.loads(found[0].read_text()) if found else {}), ended


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


def versions(device: str) -> dict[str, Any]:
    """Python, torch, CUDA, cuDNN and driver versions, and the device, for the JSON table."""
    import torch

    found: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": None,
        "driver": None,
        "device": device,
        "device_name": (
            torch.cuda.get_device_name() if device == "cuda" else f"CPU ({platform.machine()})"
        ),
        "host": platform.node(),
    }
    if device == "cuda":
        with contextlib.suppress(Exception):
            found["cudnn"] = torch.backends.cudnn.version()
        found["driver"] = _driver_version()
    return found


def _driver_version() -> str | None:
    with contextlib.suppress(Exception):
        import pynvml

        pynvml.nvmlInit()
        version = pynvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else str(version)
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
        output = subprocess.run(query, capture_output=True, text=True, timeout=30, check=True)
        return output.stdout.strip().splitlines()[0]
    return None


def row(document: dict[str, Any], ended: dict[str, Any], warmup: float) -> dict[str, Any]:
    """One workload's line of the JSON table: the figures, and what its targets need."""
    if not document:
        return {"document": False, **ended}
    metrics, details = document["metrics"], document["details"]
    reserved = secondary(document, "gpu_memory_reserved_peak")
    cap = details.get("gpu_memory_cap_bytes")
    asked, wall = document["params"]["duration"], document["wall_seconds"]
    tolerance = max(DURATION_TOLERANCE[0], DURATION_TOLERANCE[1] * asked)
    return {
        "document": True,
        "status": document["status"],
        "stop_reason": document["stop_reason"],
        "error": (document.get("error") or {}).get("message"),
        "verified": document["verification"]["passed"],
        "device_used": document["environment"]["device"]["used"],
        "compute_dtype": details.get("compute_dtype"),
        "primary": metrics["primary"],
        "tflops": tflops(document) if metrics["primary"] else None,
        "model_flops_utilisation": secondary(document, "model_flops_utilisation"),
        "gpu_memory_allocated_peak_gib": secondary(document, "gpu_memory_allocated_peak"),
        "gpu_memory_reserved_peak_gib": reserved,
        "gpu_memory_cap_bytes": cap,
        "reserved_within_cap": (
            None if reserved is None or cap is None else reserved * GiB <= cap + 2**20
        ),
        "steady_utilisation_pct": steady_utilisation(document, warmup),
        "duration_s": asked,
        "wall_seconds": wall,
        "duration_within_tolerance": abs(wall - asked) <= tolerance,
        "iterations": metrics["iterations"],
        **ended,
    }


def gpu2_over_reference(gpu2: dict[str, Any] | None, reference_tflops: float) -> float | None:
    """gpu-2's rate over the reference matmul's; None where gpu-2 did not run or ran no whole
    iteration (a busy CPU in a short dry run: its rates are then null)."""
    primary = gpu2["metrics"]["primary"] if gpu2 else None
    if primary is None or primary["value"] is None:
        return None
    return primary["value"] / reference_tflops


def judge(
    rows: dict[str, dict[str, Any]], ratio: float | None, device: str
) -> list[dict[str, Any]]:
    """Every target of the issue, each with the value it was judged on; on CUDA only."""
    if device != "cuda":
        return []

    def target(name: str, value: Any, goal: Any, met: bool | None) -> dict[str, Any]:
        verdict = "n/a" if met is None else ("met" if met else "NOT met")
        return {"target": name, "value": value, "goal": goal, "verdict": verdict}

    def at_least(value: float | None, goal: float) -> bool | None:
        return None if value is None else value >= goal

    gpu5 = rows.get("gpu-5", {})
    judged = [
        target(
            "gpu-2 / bf16 matmul",
            ratio,
            TARGETS["matmul_ratio"],
            at_least(ratio, TARGETS["matmul_ratio"]),
        ),
        target(
            "gpu-5 model_flops_utilisation",
            gpu5.get("model_flops_utilisation"),
            TARGETS["mfu"],
            at_least(gpu5.get("model_flops_utilisation"), TARGETS["mfu"]),
        ),
    ]
    for workload, found in rows.items():
        bf16 = "bfloat16" in str(found.get("compute_dtype"))
        completed = found.get("status") == "completed" and found.get("verified") is True
        on_cuda = found.get("device_used") == "cuda"
        judged += [
            target(
                f"{workload} completed and verified on cuda in bf16",
                {
                    "status": found.get("status"),
                    "verified": found.get("verified"),
                    "device": found.get("device_used"),
                    "dtype": found.get("compute_dtype"),
                },
                "completed, verified, cuda, bfloat16",
                completed and on_cuda and bf16,
            ),
            target(
                f"{workload} NVML utilisation (steady phase)",
                found.get("steady_utilisation_pct"),
                TARGETS["utilisation_pct"],
                at_least(found.get("steady_utilisation_pct"), TARGETS["utilisation_pct"]),
            ),
            target(
                f"{workload} peak reserved <= gpu_memory_cap_bytes",
                found.get("gpu_memory_reserved_peak_gib"),
                found.get("gpu_memory_cap_bytes"),
                found.get("reserved_within_cap"),
            ),
            target(
                f"{workload} wall time within max(1 s, 3 %)",
                found.get("wall_seconds"),
                found.get("duration_s"),
                found.get("duration_within_tolerance"),
            ),
        ]
    return judged


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
    parser.add_argument(
        "--reference-seconds", type=float, default=5.0, help="seconds of each reference loop"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the table as JSON")
    parser.add_argument(
        "--documents", type=Path, metavar="DIR", help="keep each results document as DIR/ID.json"
    )
    args = parser.parse_args()

    import torch

    if args.workers:
        torch.set_num_threads(args.workers)

    device = "cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu"
    table: dict[str, Any] = {
        "bench": "bench/gpu.py",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": versions(device),
        "params": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "device_asked": args.device,
            "workers": args.workers,
            "reference_seconds": args.reference_seconds,
            "seed": 1,
        },
        "workloads": {},
        "reference": {},
        "gpu2_over_reference": None,
        "targets": [],
    }
    _write(args.json, table)
    name = table["versions"]["device_name"] if device == "cuda" else "CPU"
    print(f"device: {name}; {args.duration:g} s per workload, steady after {args.warmup:g} s")
    header = (
        f"{'workload':<8} {'throughput':>22} {'TFLOP/s':>9} {'MFU':>6} "
        f"{'alloc GiB':>9} {'resv GiB':>9} {'util %':>7}  verified"
    )
    print(header, flush=True)
    results: dict[str, dict[str, Any]] = {}
    for workload in args.workloads:
        document, ended = run_workload(
            workload, args.duration, device, args.workers, args.documents
        )
        results[workload] = document
        table["workloads"][workload] = row(document, ended, args.warmup)
        _write(args.json, table)
        if not document or document["metrics"]["primary"] is None:
            message = (document.get("error") or {}).get("message") or ended.get("stderr_tail")
            print(f"{workload:<8} failed: {str(message or '?').strip()[-300:]}", flush=True)
            continue
        primary = document["metrics"]["primary"]  # value None: no iteration ended in time
        throughput = f"{_format(primary['value'], '.4g')} {primary['unit']}"
        print(
            f"{workload:<8} {throughput:>22} {_format(tflops(document), '9.3f')} "
            f"{_format(secondary(document, 'model_flops_utilisation'), '6.3f')} "
            f"{_format(secondary(document, 'gpu_memory_allocated_peak'), '9.2f')} "
            f"{_format(secondary(document, 'gpu_memory_reserved_peak'), '9.2f')} "
            f"{_format(steady_utilisation(document, args.warmup), '7.1f')}  "
            f"{document['verification']['passed']}",
            flush=True,
        )

    references = {"bfloat16": 8192} if device == "cuda" else {"float32": 512, "bfloat16": 512}
    measured = {}
    for dtype, n in references.items():
        measured[dtype] = reference_matmul(device, dtype, n, seconds=args.reference_seconds)
        table["reference"][dtype] = {"n": n, "tflops": measured[dtype]}
        print(
            f"reference: plain {dtype} matmul loop, n={n}, this process: "
            f"{measured[dtype]:.3f} TFLOP/s"
        )
    compared = "bfloat16" if device == "cuda" else "float32"  # gpu-2's product dtype there
    ratio = gpu2_over_reference(results.get("gpu-2"), measured[compared])
    if ratio is not None:
        print(f"gpu-2 / {compared} reference: {ratio:.3f}")
    table["gpu2_over_reference"] = {"reference": compared, "ratio": ratio}
    table["targets"] = judge(table["workloads"], ratio, device)
    table["ended_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _write(args.json, table)
    if device != "cuda":
        print(
            "targets (gpu-2 >= 0.85 of the reference, gpu-5 MFU >= 0.40, NVML utilisation "
            ">= 80 %, bf16, reserved memory within the cap, duration) apply on CUDA only"
        )
        return
    for judged in table["targets"]:
        print(f"target {judged['target']}: {judged['verdict']} ({judged['value']})")


def _write(path: Path | None, table: dict[str, Any]) -> None:
    """The table as JSON, replaced whole (a reader never sees half a file)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(table, indent=2, default=str) + "\n")
    partial.replace(path)


if __name__ == "__main__":
    main()
