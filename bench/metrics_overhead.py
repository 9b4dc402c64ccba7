#!/usr/bin/env python3
"""The CPU that sampling and serving metrics cost a run, measured side by side in one run.

    python bench/metrics_overhead.py [--seconds 30] [--repeat 3] [--scrapes 1000] [--idle 5]

A nearly idle workload (cpu-5, one worker at 1 % intensity) runs ``--seconds`` in four ways,
interleaved ``--repeat`` times: sampling once an hour (about no sampling); sampling every
second (every run does); the same while serving ``--metrics-port``, scraped every second by a
separate process as Prometheus would; and also writing ``--metrics-textfile``. The CPU seconds
come from each run's document (the whole process tree); the overhead is the median of the runs'
differences in cores, against no sampling and against sampling alone (with and without the
port). Whole runs are noisy at this scale (±1 % of a core between rounds), so the cost of serving
alone is also measured directly: this process serves the exporter of a run and counts its own
CPU while another process scrapes it ``--scrapes`` times (and, over ``--idle`` seconds, what the
server costs between scrapes); and so is the cost of a sample.
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


def idle_cpu(seconds: float = 5.0) -> float:
    """CPU seconds a second of this process while its main thread sleeps."""
    before = time.process_time()
    time.sleep(seconds)
    return (time.process_time() - before) / seconds


def serving_cpu(scrapes: int, idle: float) -> tuple[float, float]:
    """CPU seconds per scrape of serving a run's metrics in this process, and per second the
    server costs between scrapes (over the same process without it)."""
    from workloads.runtime.exporter import Exporter, RunMetrics, sample_values

    labels = {"workload": "cpu-5", "category": "cpu", "run_id": "x", "seed": "1", "profile": "c"}
    metrics = RunMetrics(labels, {"cloudai_envelope_cpus": 1.0, "cloudai_limit_cpus": 2.0})
    sample = {"t": 9.0, "target_intensity_pct": 1.0, "cpu_cores": 0.01, "rss_bytes": 1e8}
    totals = {"cpu_seconds": 2.0, "read_bytes": 0.0, "write_bytes": 4096.0}
    metrics.update(sample_values(sample, totals, 9, 1), ("ops_per_second", "1/s", 1.0))
    port = free_port()
    without = idle_cpu(idle)
    exporter = Exporter(port, None, metrics)
    try:
        between = idle_cpu(idle) - without
        scraper = f"""
import urllib.request
for _ in range({scrapes}):
    urllib.request.urlopen("http://127.0.0.1:{port}/metrics", timeout=5).read()
"""
        before = time.process_time()
        subprocess.run([sys.executable, "-c", scraper], check=True)
        return (time.process_time() - before) / scrapes, between
    finally:
        exporter.close()


def sampling_cpu(samples: int = 500) -> float:
    """CPU seconds per sample of the run's resource sampler, in this process with one child."""
    from workloads.runtime.sampler import ResourceSampler

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        sampler = ResourceSampler(3600, time.monotonic(), lambda t: 0.01, lambda: 0)
        before = time.process_time()
        for _ in range(samples):
            sampler.sample()
        return (time.process_time() - before) / samples
    finally:
        child.kill()
        child.wait()


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
    parser.add_argument("--scrapes", type=int, default=1000)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of each idle measure")
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
    per_sample = sampling_cpu()
    print(
        f"sampling alone: {1000 * per_sample:.2f} ms of CPU a sample; "
        f"at 1 Hz {100 * per_sample:.2f} % of a core"
    )
    per_scrape, between = serving_cpu(args.scrapes, args.idle)
    print(
        f"serving alone, {args.scrapes} scrapes: {1000 * per_scrape:.2f} ms of CPU a scrape, "
        f"{1000 * between:+.2f} ms a second between scrapes; at 1 Hz "
        f"{100 * (per_scrape + between):.2f} % of a core"
    )


def overhead(values: list[float], baseline: list[float], seconds: float) -> float:
    """The median over the rounds of the extra cores against the same round's baseline."""
    return statistics.median(
        (value - base) / seconds for value, base in zip(values, baseline, strict=True)
    )


if __name__ == "__main__":
    main()
