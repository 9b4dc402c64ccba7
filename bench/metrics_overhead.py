#!/usr/bin/env python3
"""The CPU that sampling and serving metrics cost a run, measured side by side in one run.

    python bench/metrics_overhead.py [--seconds 30] [--repeat 3]

A nearly idle workload (cpu-5, one worker at 1 % intensity) runs ``--seconds`` in four ways,
interleaved ``--repeat`` times: sampling once an hour (about no sampling); sampling every
second (every run does); the same while serving ``--metrics-port``, scraped every second by a
separate process as Prometheus would; and also writing ``--metrics-textfile``. The CPU seconds
come from each run's document (the whole process tree); the overhead is the median of the runs'
differences in cores, against no sampling and against sampling alone (with and without the
port).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WAYS = {
    "no sampling": ["--sample-interval", "3600"],
    "sampling at 1 Hz": ["--sample-interval", "1"],
    "sampling + port, scraped at 1 Hz": ["--sample-interval", "1"],
    "sampling + port + textfile": ["--sample-interval", "1"],
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scrape_every_second(port: int, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        with contextlib.suppress(OSError):  # not serving yet, or any more
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read()


def cpu_seconds(way: str, seconds: float, folder: Path) -> float:
    results = folder / f"{len(list(folder.iterdir()))}"
    args = ["run", "cpu-5", "--workers", "1", "--intensity", "1", "--seed", "1"]
    args += ["--duration", f"{seconds:g}", "--results-dir", str(results), *WAYS[way]]
    stop = threading.Event()
    if "port" in way:
        port = free_port()
        args += ["--metrics-port", str(port)]
        threading.Thread(target=scrape_every_second, args=(port, stop), daemon=True).start()
    if "textfile" in way:
        args += ["--metrics-textfile", str(folder / "m.prom")]
    subprocess.run(
        [sys.executable, "-m", "workloads", *args], cwd=ROOT, check=True, capture_output=True
    )
    stop.set()
    (document,) = results.glob("*.json")
    return json.loads(document.read_text())["resources"]["cpu_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    spent: dict[str, list[float]] = {way: [] for way in WAYS}
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(args.repeat):
            for way in WAYS:
                spent[way].append(cpu_seconds(way, args.seconds, Path(scratch)))
                time.sleep(1)
    print(f"{args.repeat} x {args.seconds:g} s of cpu-5 at 1 % intensity, one worker:")
    print(f"  {'':<36} {'CPU s':>7} {'vs no sampling':>15} {'vs sampling':>12}  (% of a core)")
    for way, values in spent.items():
        against = [overhead(values, spent[other], args.seconds) for other in list(WAYS)[:2]]
        print(
            f"  {way:<36} {statistics.median(values):7.2f} "
            f"{100 * against[0]:+15.2f} {100 * against[1]:+12.2f}"
        )


def overhead(values: list[float], baseline: list[float], seconds: float) -> float:
    """The median over the rounds of the extra cores against the same round's baseline."""
    return statistics.median(
        (value - base) / seconds for value, base in zip(values, baseline, strict=True)
    )


if __name__ == "__main__":
    main()
