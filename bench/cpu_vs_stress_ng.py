#!/usr/bin/env python3
"""How fully the CPU workloads use their cores, next to stress-ng, on this machine.

    python bench/cpu_vs_stress_ng.py [--duration 20] [--workers 2] [--workloads cpu-1 cpu-5]

For each CPU workload (cpu-1 ... cpu-7), one after another:

1. `stress-ng --cpu W --timeout N`, then `run ID --workers W --intensity 100 --duration N`: the
   CPU time of each process tree (user + system, from the kernel's accounting of reaped
   children) divided by its wall time, and the ratio of the two. Target: ratio >= 0.95.
   stress-ng runs right before each workload so both see the same machine.
2. `run ID --workers W --intensity 50 --duration N`: the achieved intensity from the document's
   `load` section (busy fraction of the workers, and CPU fraction) and from the CPU time of the
   process tree. Target: within 10 points of 50.
3. Duration accuracy of both runs: process wall time and the document's `wall_seconds` against N.
   Target: within max(1 s, 3 % of N).

It also shows each run's peak memory against the envelope. Run it on a quiet machine: anything
else running lowers both sides, but not always equally. Exit status 0 when every target is met,
1 otherwise. stress-ng is a Debian/Ubuntu package: `apt-get install -y stress-ng`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CPU_WORKLOADS = [f"cpu-{number}" for number in range(1, 8)]
RATIO_TARGET = 0.95
INTENSITY_TOLERANCE = 10.0  # percentage points
HALF = 50.0


@dataclass
class Measured:
    wall: float  # seconds, process start to exit, as seen from here
    cpu: float  # user + system seconds of the process and all its reaped descendants
    returncode: int
    document: dict[str, Any] | None = None

    @property
    def cores(self) -> float:
        return self.cpu / self.wall


def measure(command: list[str], environment: dict[str, str] | None = None) -> Measured:
    """Run ``command`` to its end; its CPU time comes from RUSAGE_CHILDREN, which the kernel
    credits with every descendant that its parent reaped (stress-ng and the runtime reap all)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    completed = subprocess.run(
        command, cwd=ROOT, env=environment, capture_output=True, text=True, check=False
    )
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if completed.returncode != 0:
        print(
            f"  ! {' '.join(command[:6])}... exited {completed.returncode}: "
            f"{completed.stderr.strip()[-300:]}",
            file=sys.stderr,
        )
    return Measured(wall, cpu, completed.returncode)


def run_workload(workload: str, workers: int, intensity: int, duration: float) -> Measured:
    # The flags alone decide the run: CLOUDAI_ variables set here must not change it.
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDAI_")}
    with tempfile.TemporaryDirectory(prefix="cloudai-bench-") as folder:
        measured = measure(
            [
                sys.executable,
                "-m",
                "workloads",
                "run",
                workload,
                "--workers",
                str(workers),
                "--intensity",
                str(intensity),
                "--duration",
                f"{duration:g}",
                "--results-dir",
                folder,
            ],
            environment,
        )
        found = list(Path(folder).glob("*.json"))
        measured.document = json.loads(found[0].read_text()) if found else None
    return measured


def run_stress_ng(stress_ng: str, workers: int, duration: float) -> Measured:
    return measure([stress_ng, "--cpu", str(workers), "--timeout", f"{duration:g}s", "--quiet"])


def duration_error(measured: Measured, duration: float) -> tuple[float, float]:
    """(process wall - N, document wall_seconds - N)."""
    document_wall = measured.document["wall_seconds"] if measured.document else float("nan")
    return measured.wall - duration, document_wall - duration


def _within(value: float, limit: float) -> bool:
    return abs(value) <= limit


def _mark(passed: bool) -> str:
    return "ok" if passed else "MISS"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per run (20)")
    parser.add_argument("--workers", type=int, default=2, help="workers, and stress-ng --cpu (2)")
    parser.add_argument("--workloads", nargs="+", default=CPU_WORKLOADS, metavar="ID")
    parser.add_argument(
        "--no-stress-ng",
        action="store_true",
        help="skip the stress-ng baseline (intensity and duration figures only)",
    )
    args = parser.parse_args()
    duration, workers = args.duration, args.workers
    duration_limit = max(1.0, 0.03 * duration)

    stress_ng = None if args.no_stress_ng else shutil.which("stress-ng")
    if stress_ng is None and not args.no_stress_ng:
        print(
            "stress-ng is not installed: apt-get install -y stress-ng (Debian/Ubuntu), "
            "or run with --no-stress-ng",
            file=sys.stderr,
        )
        return 2
    runs = len(args.workloads) * (3 if stress_ng else 2)
    print(
        f"{platform.node()}: {os.cpu_count()} CPUs, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}, Python {platform.python_version()}; "
        f"{runs} runs of {duration:g} s (about {runs * (duration + 1.5) / 60:.0f} min)",
        flush=True,
    )

    full: dict[str, tuple[Measured | None, Measured]] = {}
    half: dict[str, Measured] = {}
    for workload in args.workloads:
        print(f"  {workload} ...", flush=True)
        baseline = run_stress_ng(stress_ng, workers, duration) if stress_ng else None
        full[workload] = (baseline, run_workload(workload, workers, 100, duration))
        half[workload] = run_workload(workload, workers, 50, duration)

    passed = True
    print(
        f"\nCPU use at --workers {workers} --intensity 100, {duration:g} s (cores = CPU s / wall s)"
    )
    print(
        f"{'workload':<9} {'stress-ng':>10} {'workload':>9} {'ratio':>6} {'doc cores':>10}"
        f" {'peak MiB':>9} {'envelope':>9}  target >= {RATIO_TARGET}"
    )
    for workload, (baseline, measured) in full.items():
        document = measured.document or {}
        resources = document.get("resources", {})
        envelope = document.get("workload", {}).get("envelope", {}).get("memory", 0)
        peak = resources.get("peak_memory_bytes", 0)
        ratio = measured.cores / baseline.cores if baseline else float("nan")
        ok = (baseline is None or ratio >= RATIO_TARGET) and measured.returncode == 0
        ok &= peak < envelope
        passed &= ok
        print(
            f"{workload:<9} {baseline.cores if baseline else float('nan'):>10.3f} "
            f"{measured.cores:>9.3f} {ratio:>6.3f} {resources.get('average_cores', 0):>10.3f} "
            f"{peak / 2**20:>9.0f} {envelope / 2**20:>9.0f}  {_mark(ok)}"
        )

    print(f"\nIntensity at --intensity 50 (achieved %, target {HALF:g} +- {INTENSITY_TOLERANCE:g})")
    print(f"{'workload':<9} {'target':>7} {'busy':>7} {'doc cpu':>8} {'CPU time':>9}")
    for workload, measured in half.items():
        load = (measured.document or {}).get("load", {})
        from_cpu = 100 * measured.cpu / (measured.wall * workers)
        figures = (load.get("achieved_busy_pct", 0.0), load.get("achieved_cpu_pct", 0.0), from_cpu)
        ok = measured.returncode == 0 and all(
            _within(value - HALF, INTENSITY_TOLERANCE) for value in figures
        )
        passed &= ok
        print(
            f"{workload:<9} {load.get('target_mean_pct', 0.0):>7.1f} {figures[0]:>7.1f} "
            f"{figures[1]:>8.1f} {figures[2]:>9.1f}  {_mark(ok)}"
        )

    print(f"\nDuration accuracy (seconds off {duration:g}; target within {duration_limit:g})")
    print(f"{'workload':<9} {'run':>13} {'process':>8} {'document':>9}")
    for workload in args.workloads:
        for label, measured in (
            ("intensity 100", full[workload][1]),
            ("intensity 50", half[workload]),
        ):
            errors = duration_error(measured, duration)
            ok = all(_within(error, duration_limit) for error in errors)
            passed &= ok
            print(f"{workload:<9} {label:>13} {errors[0]:>+8.2f} {errors[1]:>+9.2f}  {_mark(ok)}")

    print("\nall targets met" if passed else "\nsome targets missed (MISS above)")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
