#!/usr/bin/env python3
"""Figures for the runtime itself, measured side by side in one run on this machine.

    python bench/foundation.py [--repeat 5] [--duration 10]

- wall time of a tiny cpu-1 run (the start-up and tear-down cost of the runtime);
- duration error of `run cpu-1 --duration 10` (process wall time and the document's);
- average cores cpu-1 keeps busy with 2 workers over 10 s.
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

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as folder:
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "workloads", "run", *args, "--results-dir", folder],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        elapsed = time.monotonic() - started
        document = json.loads(next(Path(folder).glob("*.json")).read_text())
    return elapsed, document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of the timed runs")
    args = parser.parse_args()
    repeat, seconds = args.repeat, args.duration

    tiny = [
        run("cpu-1", "--scale", "0.01", "--iterations", "10", "--seed", "1")[0]
        for _ in range(repeat)
    ]
    timed = [run("cpu-1", "--duration", f"{seconds:g}", "--workers", "2") for _ in range(repeat)]
    process_error = [elapsed - seconds for elapsed, _ in timed]
    document_error = [document["wall_seconds"] - seconds for _, document in timed]
    cores = [document["resources"]["average_cores"] for _, document in timed]

    print(f"{'figure':<52} {'median':>8} {'min':>8} {'max':>8}")
    for name, values, unit in (
        ("cpu-1 tiny (--scale 0.01 --iterations 10) wall", tiny, "s"),
        (f"--duration {seconds:g}: process wall - {seconds:g}", process_error, "s"),
        (f"--duration {seconds:g}: document wall_seconds - {seconds:g}", document_error, "s"),
        (f"cpu-1 --workers 2, {seconds:g} s: average cores", cores, ""),
    ):
        print(
            f"{name + (f' ({unit})' if unit else ''):<52} {statistics.median(values):>8.3f} "
            f"{min(values):>8.3f} {max(values):>8.3f}"
        )
    print(f"({repeat} runs each, {sys.platform}, Python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
