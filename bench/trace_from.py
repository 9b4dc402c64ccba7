#!/usr/bin/env python3
"""How long ``trace --from`` takes on a whole public log (issue 24's targets): reading the whole
UniLu Gaia log (51 987 SWF records) and writing a 50-task window (under 2 s), and converting the
whole log into a trace (under 10 s). Each is the whole command, ``python -m workloads trace``
from its start to its written file, on a 3-node target of 2 CPUs and 4 GiB; prints the median of
``--repeat`` runs and whether each target is met.

    python bench/trace_from.py [--log PATH] [--repeat 3]
    python bench/trace_from.py --synthetic --records 2000 --repeat 1    # bench/smoke

The log defaults to ../shared/traces/swf/UniLu-Gaia-2014-1.swf beside the checkout; without it
(or with --synthetic) a seeded SWF log of --records records stands in, said so in the output.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
GAIA = ROOT.parent / "shared" / "traces" / "swf" / "UniLu-Gaia-2014-1.swf"
TARGET = ("--node", "2:4g", "--nodes", "3")
# (name, extra arguments, the goal in seconds)
MEASUREMENTS = (
    ("read the whole log, write a 50-task window", ("--window", "1000:50"), 2.0),
    ("convert the whole log", (), 10.0),
)


def synthesize(path: Path, records: int, seed: int = 1) -> None:
    """An SWF log shaped like Gaia's: 151 nodes of 2004 cores, Poisson arrivals, long runs."""
    rng = np.random.default_rng(seed)
    submits = np.cumsum(rng.exponential(148.0, records)).round()
    waits = rng.exponential(300.0, records).round()
    runtimes = rng.lognormal(7.0, 2.0, records).round() + 1
    processors = rng.choice(
        [1, 2, 4, 8, 12, 24, 36], records, p=[0.3, 0.1, 0.1, 0.1, 0.3, 0.05, 0.05]
    )
    used = runtimes * rng.uniform(0.05, 1.0, records)
    users = rng.integers(1, 85, records)
    lines = ["; MaxNodes: 151", "; MaxProcs: 2004", "; Acknowledge: synthetic (bench)"]
    for n in range(records):
        fields = (
            n + 1, submits[n], waits[n], runtimes[n], processors[n], used[n].round(),
            rng.integers(1000, 100000), processors[n], runtimes[n] * 2, -1, 1, users[n],
            users[n], rng.integers(1, 500), rng.integers(0, 3), -1, -1, -1,
        )  # fmt: skip
        lines.append(" ".join(str(int(value)) for value in fields))
    path.write_text("\n".join(lines) + "\n")


def measure(log: Path, extra: tuple[str, ...], output: Path, repeat: int) -> list[float]:
    seconds = []
    for _ in range(repeat):
        output.unlink(missing_ok=True)
        started = time.monotonic()
        completed = subprocess.run(
            [sys.executable, "-m", "workloads", "trace", "--from", str(log), *TARGET, *extra,
             "--output", str(output)],
            cwd=ROOT, capture_output=True, text=True, check=False,
        )  # fmt: skip
        seconds.append(time.monotonic() - started)
        if completed.returncode != 0 or not output.is_file():
            sys.exit(f"trace --from failed ({completed.returncode}): {completed.stderr.strip()}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path, default=GAIA, help="an SWF log (default: Gaia's)")
    parser.add_argument("--synthetic", action="store_true", help="a seeded log, not --log")
    parser.add_argument("--records", type=int, default=51_987, help="the seeded log's size")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        log = args.log
        if args.synthetic or not log.is_file():
            log = Path(scratch) / "synthetic.swf"
            synthesize(log, args.records)
            print(f"log: a seeded SWF log of {args.records} records ({args.log} not used)")
        else:
            records = sum(1 for line in log.open() if line.strip() and not line.startswith(";"))
            print(f"log: {log} ({records} records, {log.stat().st_size / 1e6:.1f} MB)")
        print(f"target: {' '.join(TARGET)}; median of {args.repeat}, the whole command")
        for name, extra, goal in MEASUREMENTS:
            seconds = measure(log, extra, Path(scratch) / "trace.json", args.repeat)
            median = statistics.median(seconds)
            verdict = "met" if median < goal else "MISSED"
            runs = ", ".join(f"{s:.2f}" for s in seconds)
            print(f"{name}: median {median:.2f} s (runs: {runs}); goal < {goal:g} s: {verdict}")


if __name__ == "__main__":
    main()
