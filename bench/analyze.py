#!/usr/bin/env python3
"""How long ``analyze`` takes on a large run: a synthetic run folder of N tasks (default 10 000)
on 8 nodes of 16 CPUs, scheduled first-come first-served, each with a results document of 30
samples, analyzed by ``python -m workloads analyze`` (the whole command: start-up, jobs.csv,
summary.json and the four pictures). Prints the median of ``--repeat`` runs.

    python bench/analyze.py [--tasks 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import copy
import heapq
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
NODES, CPUS = 8, 16.0
START = 1_800_000_000.0
WORKLOADS = [("cpu-1", "cpu", 2.0, 1.0), ("io-1", "io", 1.0, 1.0), ("gpu-2", "gpu", 4.0, 8.0)]
TEMPLATE: dict = {}  # a real results document, filled by main


def synthesize(folder: Path, tasks: int, seed: int = 1) -> None:
    """A run folder as replay writes one: trace.json, replay.json, events.jsonl, documents."""
    rng = np.random.default_rng(seed)
    submits = np.cumsum(rng.exponential(0.5, tasks))
    runtimes = rng.uniform(20, 120, tasks)
    kinds = rng.integers(len(WORKLOADS), size=tasks)
    free = [(0.0, node) for node in range(NODES)]  # (free at, node): one task per node slot
    heapq.heapify(free)
    trace, lines = [], []
    for task_id in range(tasks):
        workload, category, cpus, memory = WORKLOADS[kinds[task_id]]
        submit = float(submits[task_id])
        free_at, node = heapq.heappop(free)
        start = max(submit, free_at) + 0.2
        end = start + float(runtimes[task_id])
        heapq.heappush(free, (end, node))
        trace.append(
            {"task_id": task_id, "task_name": workload, "category": category,
             "task_type": "mixed", "image": f"bench/{workload}", "command": "python x.py",
             "cpu_request": cpus, "memory_request_gib": memory, "disk_request_gib": 0.0,
             "gpu_request": 0, "duration_seconds": end - start, "seed": task_id,
             "submit_time": submit}
        )  # fmt: skip
        for kind, at, extra in (
            ("SUBMIT", submit, {"planned": submit, "submitted": submit + 0.001}),
            ("SCHEDULE", start - 0.1, {"node": f"node-{node}"}),
            ("START", start, {}),
            ("FINISH", end, {"exit_code": 0}),
        ):
            record = {"time": START + at, "t": at, "task_id": task_id, "event": kind, **extra}
            lines.append(json.dumps(record))
        _document(folder / "tasks" / str(task_id), workload, cpus, memory, start, end)
    (folder / "trace.json").write_text(json.dumps({"meta": {}, "tasks": trace}))
    (folder / "events.jsonl").write_text("\n".join(lines) + "\n")
    nodes = [
        {"id": f"node-{n}", "name": f"node-{n}", "cpus": CPUS, "memory_bytes": 64 << 30}
        for n in range(NODES)
    ]
    replay = {
        "schema_version": 2, "replay_id": "bench", "tool": "bench/analyze.py",
        "command": ["bench"], "engine": {"name": "bench", "version": "1", "api_version": "1"},
        "trace": {"path": "trace.json", "sha256": "0" * 64, "tasks": tasks, "meta": {}},
        "nodes": nodes, "speed": 1.0, "grace_seconds": 10.0, "outcome": "completed",
        "start_time": START,
    }  # fmt: skip
    (folder / "replay.json").write_text(json.dumps(replay))


def template() -> dict:
    """A real results document (a run that sets up and stops): every task's takes its shape."""
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(
            [sys.executable, "-m", "workloads", "run", "cpu-1", "--iterations", "0",
             "--results-dir", scratch, "--progress", "off"],
            cwd=ROOT, check=True, capture_output=True,
        )  # fmt: skip
        (path,) = Path(scratch).glob("*.json")
        return json.loads(path.read_text())


def _document(folder: Path, workload: str, cpus: float, memory: float, start: float, end: float):
    folder.mkdir(parents=True)
    began = datetime.fromtimestamp(START + start, timezone.utc)
    document = copy.deepcopy(TEMPLATE)
    sample = document["timeseries"]["samples"][0]
    document["timeseries"]["samples"] = [
        sample | {"t": float(t), "cpu_cores": cpus * 0.9} for t in np.linspace(1, end - start, 30)
    ]
    document["workload"]["id"] = workload
    document.update(status="completed", stop_reason="duration")
    document["started_at"] = began.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    document["verification"]["passed"] = True
    document["metrics"]["primary"] = {"name": "rate", "value": 1.0, "unit": "x/s"}
    document["resources"].update(
        cpu_seconds=cpus * 0.9 * (end - start), average_cores=cpus * 0.9,
        peak_memory_bytes=1 << 28,
    )  # fmt: skip
    document["limits"].update(
        cpu_quota=cpus, cpuset=list(range(16)), host_cpus=16, memory_limit=round(memory * 2**30)
    )
    (folder / f"{workload}_run.json").write_text(json.dumps(document))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    TEMPLATE.update(template())
    with tempfile.TemporaryDirectory() as scratch:
        run = Path(scratch) / "run"
        run.mkdir()
        synthesize(run, args.tasks)
        seconds = []
        for _ in range(args.repeat):
            started = time.monotonic()
            subprocess.run(
                [sys.executable, "-m", "workloads", "analyze", str(run)],
                cwd=ROOT, check=True, capture_output=True,
            )  # fmt: skip
            seconds.append(time.monotonic() - started)
        print(
            f"analyze, {args.tasks} tasks: median {statistics.median(seconds):.2f} s "
            f"(runs: {', '.join(f'{s:.2f}' for s in seconds)})"
        )


if __name__ == "__main__":
    main()
