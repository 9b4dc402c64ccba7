#!/usr/bin/env python3
"""Figures for replay, measured on this machine's engine (scripts/docker-up first, as root).

    python bench/replay.py [--pacing-rate 10] [--pacing-seconds 60] [--overhead-tasks 8]
                           [--nodes 3] [--node-tasks 12] [--skip-nodes]

It first builds and pushes the images it replays (bench/_toolchain.py: the bench's namespace in
the local registry), from this checkout.

1. Pacing: a fixed-rate trace at ``--pacing-rate`` submissions/s for ``--pacing-seconds`` on
   the docker engine, its tasks' command replaced by ``true`` (a container that ends at once:
   what is measured is the submitter and the engine, not 10 workloads a second on 2 cores): the
   submit lag (the call's offset minus the plan) and the creation lag (the engine's record of
   creation minus the plan), p50/p99/max.
2. Engine overhead with an empty queue: ``--overhead-tasks`` tasks 5 s apart, each alone on the
   machine; SUBMIT to START on docker and on a one-node swarm (p50/max). The swarm is this
   engine's: made for the run and left afterwards, unless the engine was in one already.
3. Several machines: ``scripts/swarm-nodes up N`` (``--nodes``), a trace of ``--node-tasks``
   tasks that overloads them, then the tasks per node and the waits; the nodes are torn down
   afterwards. ``--skip-nodes`` (or ``--nodes 0``) leaves this part out.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from _toolchain import NAMESPACE, REGISTRY, ROOT, push_images

PACED = "io-3"  # the pacing and overhead traces' workload
SPREAD = ("cpu-1", "cpu-3", "cpu-5", "io-1", "io-3")  # the several machines' mix


def cli(*args: str, env: dict[str, str] | None = None) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", "workloads", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode:
        raise SystemExit(f"{' '.join(args[:2])} failed:\n{completed.stdout}{completed.stderr}")
    return completed.stdout


def trace(folder: Path, name: str, *args: str) -> Path:
    path = folder / f"{name}.json"
    cli("trace", *args, "--registry", REGISTRY, "--namespace", NAMESPACE, "--output", str(path))
    return path


def replay(path: Path, run: Path, *args: str, env: dict[str, str] | None = None) -> Path:
    cli("replay", str(path), "--output", str(run), *args, env=env)
    return run


def events(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]


def spread(values: list[float], unit: float = 1e3) -> str:
    p50, p99 = np.percentile(values, [50, 99])
    return f"p50 {p50 * unit:.1f}, p99 {p99 * unit:.1f}, max {max(values) * unit:.1f} ms"


def pacing(folder: Path, rate: float, seconds: float) -> None:
    tasks = round(rate * seconds)
    path = trace(
        folder, "pacing", "--tasks", str(tasks), "--arrival", "fixed", "--rate", f"{rate:g}",
        "--mix", f"{PACED}=1",
    )  # fmt: skip
    data = json.loads(path.read_text())
    for task in data["tasks"]:
        task["command"] = "true"
    path.write_text(json.dumps(data))
    run = replay(path, folder / "pacing-run")
    submits = [e for e in events(run) if e["event"] == "SUBMIT"]
    lag = [e["submitted"] - e["planned"] for e in submits]
    creation = [e["t"] - e["planned"] for e in submits]
    print(f"pacing, {tasks} tasks at {rate:g}/s on docker:")
    print(f"  submit lag (call - plan):        {spread(lag)}")
    print(f"  creation lag (engine's - plan):  {spread(creation)}")
    created = sorted(e["t"] for e in submits)
    if len(created) > 1:
        rate_made = (len(created) - 1) / (created[-1] - created[0])
        print(f"  the engine created {len(created)} containers at {rate_made:.1f}/s")


def overhead(folder: Path, engine: str, tasks: int) -> None:
    path = trace(
        folder, f"overhead-{engine}", "--tasks", str(tasks), "--arrival", "fixed", "--rate", "0.2",
        "--mix", f"{PACED}=1", "--duration-range", "2:2", "--scale", "0.05",
    )  # fmt: skip
    run = replay(path, folder / f"overhead-{engine}", "--engine", engine)
    submit, start = {}, {}
    for event in events(run):
        if event["event"] == "SUBMIT":
            submit[event["task_id"]] = event["time"]
        elif event["event"] == "START":
            start[event["task_id"]] = event["time"]
    delays = [start[task] - submit[task] for task in start]
    print(f"  {engine:<6} SUBMIT to START, empty queue, {len(delays)} tasks: {spread(delays)}")


def in_swarm() -> bool:
    state = subprocess.run(
        ["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return state.stdout.strip() == "active"


def swarm(command: str) -> None:
    subprocess.run(["docker", "swarm", command, *(
        ["--advertise-addr", "127.0.0.1"] if command == "init" else ["--force"]
    )], capture_output=True, check=False)  # fmt: skip


def nodes(folder: Path, count: int, tasks: int) -> None:
    up = subprocess.run(
        [ROOT / "scripts" / "swarm-nodes", "up", str(count)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    settings = dict(line.split("=", 1) for line in up.stdout.split())
    try:
        path = trace(
            folder, "nodes", "--tasks", str(tasks), "--mix", ",".join(f"{w}=1" for w in SPREAD),
            "--rate", "2", "--duration-range", "3:6", "--scale", "0.05", "--seed", "7",
        )  # fmt: skip
        run = replay(
            path, folder / "nodes-run", "--engine", "swarm", "--registry", settings["REGISTRY"],
            env={"DOCKER_HOST": settings["DOCKER_HOST"]},
        )  # fmt: skip
        cli("analyze", str(run))
    finally:
        subprocess.run([ROOT / "scripts" / "swarm-nodes", "down"], capture_output=True, check=True)
    replay_record = json.loads((run / "replay.json").read_text())
    names = {node["id"]: f"node {n}" for n, node in enumerate(replay_record["nodes"], 1)}
    scheduled = [e for e in events(run) if e["event"] == "SCHEDULE"]
    per_node = Counter(names.get(e["node"], e["node"]) for e in scheduled)
    summary = json.loads((run / "summary.json").read_text())
    queued = sum(1 for e in events(run) if e["event"] == "QUEUE")
    wait = summary["overall"]["wait_s"]
    cpus = sum(node["cpus"] for node in replay_record["nodes"])
    machines = f"{count} node{'s' * (count != 1)}"
    print(f"{machines}, {summary['tasks']} tasks, {cpus:g} CPUs of reservations:")
    print(f"  tasks per node: {dict(sorted(per_node.items()))}")
    print(f"  queued by Swarm (QUEUE events): {queued} of {summary['tasks']}")
    print(
        f"  wait p50 {wait['p50']:.2f} s, p90 {wait['p90']:.2f} s, max {wait['max']:.2f} s; "
        f"makespan {summary['makespan_s']:.1f} s; {summary['states']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pacing-rate", type=float, default=10.0)
    parser.add_argument("--pacing-seconds", type=float, default=60.0)
    parser.add_argument("--overhead-tasks", type=int, default=8, help="tasks on each engine")
    parser.add_argument("--nodes", type=int, default=3, help="swarm nodes of part 3 (0: none)")
    parser.add_argument("--node-tasks", type=int, default=12, help="tasks on those nodes")
    parser.add_argument("--skip-nodes", action="store_true", help="the same as --nodes 0")
    args = parser.parse_args()
    # A time limit's SIGTERM ends the run through its finally blocks: what it set up goes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    count = 0 if args.skip_nodes else args.nodes
    push_images(list(dict.fromkeys([PACED, *(SPREAD if count else ())])))
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        pacing(folder, args.pacing_rate, args.pacing_seconds)
        print("engine overhead:")
        overhead(folder, "docker", args.overhead_tasks)
        ours = not in_swarm()
        if ours:
            swarm("init")
        try:
            overhead(folder, "swarm", args.overhead_tasks)
        finally:
            if ours:
                swarm("leave")
        if count:
            nodes(folder, count, args.node_tasks)


if __name__ == "__main__":
    main()
