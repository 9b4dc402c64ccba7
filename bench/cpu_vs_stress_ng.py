#!/usr/bin/env python3
"""How fully the CPU workloads use their cores, next to stress-ng, on this machine.

    python bench/cpu_vs_stress_ng.py [--duration 20] [--workers 2] [--repeat 1]
                                     [--workloads cpu-1 cpu-5] [--no-stress-ng] [--report-only]

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

It also shows each run's peak memory against the envelope. With --repeat R every measurement is
taken R times, interleaved, and the median is shown (the worst, for duration errors).

Run it on a quiet machine. The "others" columns show the cores that other processes used during
each run (system-wide busy time from /proc/stat, less this run's own), and "steal" the cores the
hypervisor took: when either is above 0.1, the run shared the machine and the CPU figures (the
ratio and the CPU-based intensity) understate the workload. Exit status: 0 when every target is
met, 1 otherwise (0 with --report-only, for runs too short to meet them), 2 without stress-ng
(a Debian/Ubuntu package: `apt-get install -y stress-ng`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
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
QUIET = 0.1  # cores used by others (or stolen) during a run, above which it was not quiet
NAN = float("nan")


@dataclass
class Measured:
    wall: float  # seconds, process start to exit, as seen from here
    cpu: float  # user + system seconds of the process and all its reaped descendants
    others: float  # cores other processes kept busy meanwhile
    steal: float  # cores the hypervisor took meanwhile
    returncode: int
    document: dict[str, Any] | None = None

    @property
    def cores(self) -> float:
        return self.cpu / self.wall

    @property
    def quiet(self) -> bool:
        return self.others <= QUIET and self.steal <= QUIET


def system_cpu() -> tuple[float, float]:
    """(busy seconds, stolen seconds) of all CPUs since boot, from /proc/stat (NaN elsewhere)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return NAN, NAN
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq) / tick, steal / tick


def measure(command: list[str], environment: dict[str, str] | None = None) -> Measured:
    """Run ``command`` to its end; its CPU time comes from RUSAGE_CHILDREN, which the kernel
    credits with every descendant that its parent reaped (stress-ng and the runtime reap all)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy_before, steal_before = system_cpu()
    started = time.monotonic()
    completed = subprocess.run(
        command, cwd=ROOT, env=environment, capture_output=True, text=True, check=False
    )
    wall = time.monotonic() - started
    busy_after, steal_after = system_cpu()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if completed.returncode != 0:
        print(
            f"  ! {' '.join(command[:6])} ... exited {completed.returncode}: "
            f"{completed.stderr.strip()[-300:]}",
            file=sys.stderr,
        )
    others = max(0.0, (busy_after - busy_before - cpu) / wall)
    return Measured(wall, cpu, others, (steal_after - steal_before) / wall, completed.returncode)


def run_workload(workload: str, workers: int, intensity: int, duration: float) -> Measured:
    # The flags alone decide the run: CLOUDAI_ variables set here must not change it.
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDAI_")}
    with tempfile.TemporaryDirectory(prefix="cloudai-bench-") as folder:
        measured = measure(
            [
                *(sys.executable, "-m", "workloads", "run", workload),
                *("--workers", str(workers), "--intensity", str(intensity)),
                *("--duration", f"{duration:g}", "--results-dir", folder),
            ],
            environment,
        )
        found = list(Path(folder).glob("*.json"))
        measured.document = json.loads(found[0].read_text()) if found else None
    return measured


def run_stress_ng(stress_ng: str, workers: int, duration: float) -> Measured:
    return measure([stress_ng, "--cpu", str(workers), "--timeout", f"{duration:g}s", "--quiet"])


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else NAN


def _worst(values: list[float]) -> float:
    return max(values, key=abs)


def _mark(passed: bool, quiet: bool = True) -> str:
    return ("ok" if passed else "MISS") + ("" if quiet else " (not quiet)")


def _document(measured: Measured, *keys: str) -> Any:
    value: Any = measured.document or {}
    for key in keys:
        value = value.get(key, {}) if isinstance(value, dict) else {}
    return value if value != {} else NAN


@dataclass
class Results:
    baselines: dict[str, list[Measured]]
    full: dict[str, list[Measured]]
    half: dict[str, list[Measured]]


def collect(args: argparse.Namespace, stress_ng: str | None) -> Results:
    results = Results({}, {}, {})
    for repeat in range(args.repeat):
        for workload in args.workloads:
            print(f"  {workload} ({repeat + 1}/{args.repeat}) ...", flush=True)
            if stress_ng:
                baseline = run_stress_ng(stress_ng, args.workers, args.duration)
                results.baselines.setdefault(workload, []).append(baseline)
            full = run_workload(workload, args.workers, 100, args.duration)
            results.full.setdefault(workload, []).append(full)
            half = run_workload(workload, args.workers, 50, args.duration)
            results.half.setdefault(workload, []).append(half)
    return results


def report_full(results: Results, workers: int, duration: float) -> bool:
    passed = True
    print(f"\nCPU use at --workers {workers} --intensity 100, {duration:g} s")
    print("(cores = CPU seconds / wall seconds of the process tree; ratio = workload / stress-ng)")
    print(
        f"{'workload':<9} {'stress-ng':>9} {'others':>7} {'workload':>9} {'others':>7} "
        f"{'steal':>6} {'ratio':>6} {'peak MiB':>9} {'envelope':>9}  target >= {RATIO_TARGET}"
    )
    for workload, runs in results.full.items():
        baselines = results.baselines.get(workload, [])
        pairs = zip(runs, baselines, strict=False)  # no baselines with --no-stress-ng
        ratio = _median([run.cores / base.cores for run, base in pairs])
        peak = max(_document(run, "resources", "peak_memory_bytes") for run in runs)
        envelope = _document(runs[0], "workload", "envelope", "memory")
        ok = all(run.returncode == 0 for run in runs) and peak < envelope
        ok &= not baselines or ratio >= RATIO_TARGET
        quiet = all(run.quiet for run in runs + baselines)
        passed &= ok
        print(
            f"{workload:<9} {_median([b.cores for b in baselines]):>9.3f} "
            f"{_median([b.others for b in baselines]):>7.2f} "
            f"{_median([r.cores for r in runs]):>9.3f} {_median([r.others for r in runs]):>7.2f} "
            f"{_median([r.steal for r in runs + baselines]):>6.2f} {ratio:>6.3f} "
            f"{peak / 2**20:>9.0f} {envelope / 2**20:>9.0f}  {_mark(ok, quiet)}"
        )
    return passed


def report_half(results: Results, workers: int) -> bool:
    passed = True
    print(f"\nIntensity at --intensity 50 (achieved %, target {HALF:g} +- {INTENSITY_TOLERANCE:g})")
    print(f"{'workload':<9} {'target':>7} {'busy':>7} {'doc cpu':>8} {'CPU time':>9} {'others':>7}")
    for workload, runs in results.half.items():
        figures = (
            _median([_document(run, "load", "achieved_busy_pct") for run in runs]),
            _median([_document(run, "load", "achieved_cpu_pct") for run in runs]),
            _median([100 * run.cpu / (run.wall * workers) for run in runs]),
        )
        ok = all(run.returncode == 0 for run in runs)
        ok &= all(abs(value - HALF) <= INTENSITY_TOLERANCE for value in figures)
        passed &= ok
        target = _median([_document(run, "load", "target_mean_pct") for run in runs])
        print(
            f"{workload:<9} {target:>7.1f} "
            f"{figures[0]:>7.1f} {figures[1]:>8.1f} {figures[2]:>9.1f} "
            f"{_median([r.others for r in runs]):>7.2f}  "
            f"{_mark(ok, all(run.quiet for run in runs))}"
        )
    return passed


def report_durations(results: Results, duration: float) -> bool:
    passed, limit = True, max(1.0, 0.03 * duration)
    print(f"\nDuration accuracy (seconds off {duration:g}; target within {limit:g})")
    print(f"{'workload':<9} {'run':>13} {'process':>8} {'document':>9}")
    for workload in results.full:
        for label, runs in (
            ("intensity 100", results.full[workload]),
            ("intensity 50", results.half[workload]),
        ):
            process = _worst([run.wall - duration for run in runs])
            document = _worst([_document(run, "wall_seconds") - duration for run in runs])
            ok = abs(process) <= limit and abs(document) <= limit
            passed &= ok
            print(f"{workload:<9} {label:>13} {process:>+8.2f} {document:>+9.2f}  {_mark(ok)}")
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per run (20)")
    parser.add_argument("--workers", type=int, default=2, help="workers, and stress-ng --cpu (2)")
    parser.add_argument("--repeat", type=int, default=1, help="measurements of each (1)")
    parser.add_argument("--workloads", nargs="+", default=CPU_WORKLOADS, metavar="ID")
    parser.add_argument(
        "--no-stress-ng",
        action="store_true",
        help="skip the stress-ng baseline (intensity and duration figures only)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="exit 0 once the figures are printed, whether or not the targets were met",
    )
    args = parser.parse_args()

    stress_ng = None if args.no_stress_ng else shutil.which("stress-ng")
    if stress_ng is None and not args.no_stress_ng:
        print(
            "stress-ng is not installed: apt-get install -y stress-ng (Debian/Ubuntu), "
            "or run with --no-stress-ng",
            file=sys.stderr,
        )
        return 2
    runs = len(args.workloads) * args.repeat * (3 if stress_ng else 2)
    print(
        f"{platform.node()}: {os.cpu_count()} CPUs, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}, Python {platform.python_version()}; "
        f"{runs} runs of {args.duration:g} s (about {runs * (args.duration + 1.5) / 60:.0f} min)",
        flush=True,
    )
    results = collect(args, stress_ng)
    passed = report_full(results, args.workers, args.duration)
    passed &= report_half(results, args.workers)
    passed &= report_durations(results, args.duration)
    everything = [
        run for group in vars(results).values() for runs in group.values() for run in runs
    ]
    if not all(run.quiet for run in everything):
        print(
            f"\nother processes used more than {QUIET} cores during some runs: not a quiet machine"
        )
    print("\nall targets met" if passed else "\nsome targets missed (MISS above)")
    return 0 if passed or args.report_only else 1


if __name__ == "__main__":
    sys.exit(main())
