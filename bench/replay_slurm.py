#!/usr/bin/env python3
"""Figures for replay on Slurm, measured side by side in one run (as root, with the Docker
toolchain of scripts/docker-up; scripts/slurm-up and scripts/swarm-nodes are run here).

    python bench/replay_slurm.py [--overhead-tasks 20] [--pacing-rate 10] [--pacing-seconds 20]
                                 [--nodes 3] [--tasks 12] [--rate 0.5] [--duration-range 10:20]
                                 [--scale 0.2] [--seed 1] [--figures DIR] [--keep DIR]

It first builds and pushes the images it replays (bench/_toolchain.py: the bench's namespace in
the local registry), from this checkout.

1. SUBMIT to START on an empty one-node cluster, through the engine against ``sbatch --wrap
   true`` submitted directly, interleaved (``--overhead-tasks`` each, 5 s apart, each at a
   random phase of Slurm's one-second backfill pass; the direct job asks for what the engine's
   does): from the call to the first look at it running, seen three ways: by one observer that
   polls squeue every 20 ms for both sides' jobs (the same instrument: the goal is judged on
   it), by each side's own look (the engine polls every POLL_SECONDS, the direct loop every
   20 ms), and in Slurm's own record (whole seconds). Goal: the engine adds at most 10 % to the
   p50.
2. Pacing: ``--pacing-rate`` submissions/s for ``--pacing-seconds`` (each task's command
   ``true``): the submit lag (the call's offset minus the plan) and the acceptance lag (sbatch
   returned minus the plan), p50/p99/max. Goal: submit lag p99 < 0.25 s. The replay is stopped
   once every task is submitted (the pending rest is cancelled: what is measured is the
   submitter, not two cores running 200 containers).
3. One trace, three schedulers: the same seeded trace (``--tasks``, io=1,cpu=2, ``--rate``,
   ``--duration-range``, ``--scale``, ``--seed``) replayed on docker, on a ``--nodes`` swarm
   (scripts/swarm-nodes) and on a ``--nodes`` Slurm (scripts/slurm-up), then ``analyze``: wait
   p50/p99, bounded slowdown, utilisation, makespan, enforcement side by side, and ``analyze
   --baseline`` of each against docker. ``--figures DIR`` writes three-schedulers.png there
   (each run's tasks over time, and the three wait CDFs); ``--keep DIR`` keeps the run folders.

The Slurm cluster found before is put back afterwards (or none, when there was none).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from _toolchain import NAMESPACE, REGISTRY, ROOT, push_images

from workloads.replay.slurm_engine import POLL_SECONDS
from workloads.replay.slurm_records import list_jobs

PACED = "io-3"  # the overhead and pacing traces' workload (its command replaced by `true`)
SLURM_UP, SLURM_DOWN = ROOT / "scripts" / "slurm-up", ROOT / "scripts" / "slurm-down"
SWARM_NODES = ROOT / "scripts" / "swarm-nodes"
GAP_S = 5.0  # between two submissions of one side in part 1
DIRECT_POLL_S = 0.02


def run(*command: str | Path, env: dict[str, str] | None = None) -> str:
    completed = subprocess.run(
        [str(word) for word in command], cwd=ROOT, env={**os.environ, **(env or {})},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if completed.returncode:
        raise SystemExit(f"{' '.join(map(str, command[:4]))} failed:\n"
                         f"{completed.stdout[-2000:]}{completed.stderr[-2000:]}")  # fmt: skip
    return completed.stdout


def cli(*args: str | Path, env: dict[str, str] | None = None) -> str:
    return run(sys.executable, "-m", "workloads", *args, env=env)


def trace(path: Path, *args: str) -> Path:
    cli("trace", *args, "--registry", REGISTRY, "--namespace", NAMESPACE, "--output", path)
    return path


def events(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]


def record(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "replay.json").read_text())


def by_task(folder: Path, kind: str) -> dict[int, dict[str, Any]]:
    return {event["task_id"]: event for event in events(folder) if event["event"] == kind}


def spread(values: list[float], unit: float = 1.0, suffix: str = " s") -> str:
    if not values:
        return "none"
    p50, p99 = np.percentile(values, [50, 99])
    return (f"p50 {p50 * unit:.3f}, p99 {p99 * unit:.3f}, max {max(values) * unit:.3f}{suffix} "
            f"({len(values)})")  # fmt: skip


def slurm_up(nodes: int) -> dict[str, str]:
    return dict(line.split("=", 1) for line in run(SLURM_UP, str(nodes)).split())


def nodes_up() -> int:
    if shutil.which("sinfo") is None:
        return 0
    listed = subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True,
                            check=False)  # fmt: skip
    return len(set(listed.stdout.split())) if listed.returncode == 0 else 0


def commands_true(path: Path, jitter: float = 0.0, seed: int = 0) -> Path:
    """Every task's command `true`; each submit time moved by up to ``jitter`` s (seeded)."""
    data = json.loads(path.read_text())
    draw = random.Random(seed)
    for task in data["tasks"]:
        task["command"] = "true"
        task["submit_time"] += draw.uniform(0, jitter)
    path.write_text(json.dumps(data))
    return path


# -- 1. SUBMIT to START on an empty cluster --------------------------------------------------------
class Observer(threading.Thread):
    """One squeue every DIRECT_POLL_S for every job: when each job name was first seen out of
    PENDING. The same instrument for the engine's jobs and the direct ones."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.running: dict[str, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            listed = subprocess.run(
                ["squeue", "-h", "-t", "all", "-o", "%j %T"],
                capture_output=True, text=True, check=False,
            ).stdout  # fmt: skip
            seen = time.time()
            for line in listed.splitlines():
                name, _, state = line.rpartition(" ")
                if state not in ("PENDING", "CONFIGURING"):
                    self.running.setdefault(name, seen)
            self.done.wait(DIRECT_POLL_S)


def direct_job(options: list[str], name: str) -> tuple[str, float, float]:
    """``sbatch --wrap true``; its id, when it was called, and the seconds from the call to the
    first look at it out of PENDING (polled every DIRECT_POLL_S)."""
    called = time.time()
    submitted = subprocess.run(
        ["sbatch", "--parsable", "--output=/dev/null", f"--job-name={name}", *options,
         "--wrap", "true"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    job_id = submitted.stdout.strip().split(";")[0]
    while True:
        state = subprocess.run(
            ["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"],
            capture_output=True, text=True, check=False,
        ).stdout.strip()  # fmt: skip
        if state and state not in ("PENDING", "CONFIGURING"):
            return job_id, called, time.time() - called
        time.sleep(DIRECT_POLL_S)


def overhead(folder: Path, tasks: int) -> dict[str, Any]:
    path = trace(
        folder / "overhead.json", "--tasks", str(tasks), "--arrival", "fixed",
        "--rate", f"{1 / GAP_S:g}", "--mix", f"{PACED}=1", "--duration-range", "1:1",
    )  # fmt: skip
    commands_true(path, jitter=1.0, seed=1)
    sample = json.loads(path.read_text())["tasks"][0]
    options = [
        "--nodes=1", "--ntasks=1", f"--cpus-per-task={int(np.ceil(sample['cpu_request']))}",
        f"--mem={int(np.ceil(sample['memory_request_gib'] * 1024))}M",
    ]  # fmt: skip
    run_folder = folder / "overhead-run"
    replay = subprocess.Popen(
        [sys.executable, "-m", "workloads", "replay", str(path), "--engine", "slurm",
         "--output", str(run_folder)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    direct: dict[str, float] = {}
    called: dict[str, float] = {}  # a direct job's name: when sbatch was called
    observer = Observer()
    observer.start()
    draw = random.Random(2)
    while not (run_folder / "replay.json").exists() and replay.poll() is None:
        time.sleep(0.05)
    started = time.time()
    for k in range(tasks):  # half a gap after each of the engine's, at a random phase
        time.sleep(max(0.0, started + (k + 0.5) * GAP_S + draw.uniform(0, 1) - time.time()))
        name = f"bench-direct-{k}"
        job_id, called[name], seconds = direct_job(options, name)
        direct[job_id] = seconds
    _, stderr = replay.communicate()
    observer.done.set()
    observer.join()
    if replay.returncode:
        raise SystemExit(f"the overhead replay failed:\n{stderr[-2000:]}")
    replayed = record(run_folder)
    start_time, replay_id = replayed["start_time"], replayed["replay_id"].lower()
    submits, starts = by_task(run_folder, "SUBMIT"), by_task(run_folder, "START")
    engine = [starts[t]["observed"] - (start_time + submits[t]["submitted"]) for t in starts]
    seen = observer.running
    same_engine = [
        seen[name] - (start_time + submits[t]["submitted"])
        for t in starts
        if (name := f"cloudai-replay-{replay_id}-{t}") in seen
    ]
    same_direct = [seen[name] - called[name] for name in called if name in seen]
    engine_slurm = [starts[t]["time"] - submits[t]["time"] for t in starts]
    listed = list_jobs(str(os.getuid()))
    direct_slurm = [
        listed[j].start - listed[j].submit  # type: ignore[operator]
        for j in direct
        if j in listed and listed[j].start and listed[j].submit
    ]
    p50_engine, p50_direct = float(np.median(same_engine)), float(np.median(same_direct))
    added = p50_engine / p50_direct - 1
    print(f"SUBMIT to START, empty one-node cluster, {tasks} jobs each way, interleaved:")
    print(f"  one observer, 20 ms squeue polls: engine {spread(same_engine)}; "
          f"direct {spread(same_direct)}")  # fmt: skip
    print(f"  the engine's own look ({POLL_SECONDS:g} s polls): {spread(engine)}; the direct "
          f"loop's (20 ms polls): {spread(list(direct.values()))}")  # fmt: skip
    print(f"  Slurm's record (whole seconds): engine {spread(engine_slurm)}; "
          f"direct {spread(direct_slurm)}")  # fmt: skip
    verdict = "met" if added <= 0.10 else "missed"
    print(f"  the engine adds {added * 100:+.0f} % to the p50, seen by the one observer "
          f"(goal <= +10 %: {verdict})")  # fmt: skip
    own = float(np.median(engine)) / float(np.median(list(direct.values()))) - 1
    print(f"  (each side's own look: {own * 100:+.0f} %, the engine's coarser poll included)")
    return {"engine_p50_s": p50_engine, "direct_p50_s": p50_direct, "added": added, "own": own}


# -- 2. pacing ------------------------------------------------------------------------------------
def pacing(folder: Path, rate: float, seconds: float) -> dict[str, Any]:
    tasks = max(2, round(rate * seconds))
    path = trace(
        folder / "pacing.json", "--tasks", str(tasks), "--arrival", "fixed",
        "--rate", f"{rate:g}", "--mix", f"{PACED}=1", "--duration-range", "1:1",
    )  # fmt: skip
    commands_true(path)
    run_folder = folder / "pacing-run"
    replay = subprocess.Popen(
        [sys.executable, "-m", "workloads", "replay", str(path), "--engine", "slurm",
         "--output", str(run_folder), "--grace", "1"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    log = run_folder / "events.jsonl"
    deadline = time.monotonic() + seconds + 120
    while replay.poll() is None and time.monotonic() < deadline:
        if log.exists() and log.read_text().count('"SUBMIT"') >= tasks:
            break
        time.sleep(0.2)
    if replay.poll() is None:
        replay.send_signal(signal.SIGTERM)  # every task submitted: the rest is cancelled
    _, stderr = replay.communicate(timeout=300)
    if replay.returncode not in (0, 128 + signal.SIGTERM):
        raise SystemExit(f"the pacing replay failed:\n{stderr[-2000:]}")
    start_time = record(run_folder)["start_time"]
    submits = list(by_task(run_folder, "SUBMIT").values())
    lag = [e["submitted"] - e["planned"] for e in submits]
    accepted = [e["observed"] - start_time - e["planned"] for e in submits]
    p99 = float(np.percentile(lag, 99))
    print(f"pacing, {len(submits)} of {tasks} tasks at {rate:g}/s on Slurm:")
    print(f"  submit lag (call - plan):              {spread(lag, 1e3, ' ms')}")
    print(f"  acceptance lag (sbatch returned - plan): {spread(accepted, 1e3, ' ms')}")
    print(f"  submit lag p99 {p99:.3f} s (goal < 0.25 s: {'met' if p99 < 0.25 else 'missed'})")
    return {"submit_lag_p99_s": p99}


# -- 3. one trace, three schedulers --------------------------------------------------------------
ROWS = (
    ("tasks", lambda s: f"{s['tasks']}"),
    ("states", lambda s: " ".join(f"{k} {v}" for k, v in sorted(s["states"].items()))),
    ("wait p50 (s)", lambda s: f"{s['overall']['wait_s']['p50']:.1f}"),
    ("wait p99 (s)", lambda s: f"{s['overall']['wait_s']['p99']:.1f}"),
    ("bounded slowdown p50", lambda s: f"{s['overall']['bounded_slowdown']['p50']:.2f}"),
    ("bounded slowdown p99", lambda s: f"{s['overall']['bounded_slowdown']['p99']:.2f}"),
    ("capacity (CPUs)", lambda s: f"{s['utilisation']['capacity_cpus']:g}"),
    ("utilisation, requested", lambda s: f"{s['utilisation']['requested']:.2f}"),
    ("utilisation, measured", lambda s: f"{s['utilisation']['measured']:.2f}"),
    ("makespan (s)", lambda s: f"{s['makespan_s']:.1f}"),
    ("enforcement violations", lambda s: f"{s['enforcement_violations']}"),
)


def enforced(folder: Path) -> str:
    from workloads.analysis.jobs import load_jobs

    verdicts = [job.enforced for job in load_jobs(folder)]
    return (f"{sum(v is True for v in verdicts)} yes, {sum(v is False for v in verdicts)} no, "
            f"{sum(v is None for v in verdicts)} unknown")  # fmt: skip


def compare(folder: Path, path: Path, args: argparse.Namespace) -> dict[str, Path]:
    runs = {name: folder / name for name in ("docker", "swarm", "slurm")}
    cli("replay", path, "--engine", "docker", "--output", runs["docker"])
    up = run(SWARM_NODES, "up", str(args.nodes))
    settings = dict(line.split("=", 1) for line in up.split())
    try:
        cli(
            "replay", path, "--engine", "swarm", "--output", runs["swarm"],
            "--registry", settings["REGISTRY"], env={"DOCKER_HOST": settings["DOCKER_HOST"]},
        )  # fmt: skip
    finally:
        subprocess.run([SWARM_NODES, "down"], capture_output=True, check=False)
    partition = slurm_up(args.nodes)["PARTITION"]
    cli("replay", path, "--engine", "slurm", "--output", runs["slurm"], "--partition", partition)
    summaries = {}
    for name, folder_of in runs.items():
        cli("analyze", folder_of)
        summaries[name] = json.loads((folder_of / "summary.json").read_text())
    heads = headings(args.nodes)
    print(
        f"one trace, three schedulers ({args.tasks} tasks, io=1,cpu=2, rate {args.rate:g}/s, "
        f"durations {args.duration_range} s, scale {args.scale:g}, seed {args.seed}):"
    )
    print("| figure | " + " | ".join(heads.values()) + " |")
    print("|---|" + "---|" * len(heads))
    for label, cell in ROWS:
        print(f"| {label} | " + " | ".join(cell(summaries[name]) for name in runs) + " |")
    print("| enforced (jobs.csv) | " + " | ".join(enforced(runs[name]) for name in runs) + " |")
    for name in ("swarm", "slurm"):  # the overall figures (not by category)
        print(f"\nanalyze {name} --baseline docker:")
        lines = cli("analyze", runs[name], "--baseline", runs["docker"]).splitlines()
        print("\n".join(line for line in lines[1:] if not line.startswith(("cpu.", "io."))))
    return runs


def headings(nodes: int) -> dict[str, str]:
    machines = f"{nodes} node{'s' * (nodes != 1)}"
    return {"docker": "docker (1 engine)", "swarm": f"swarm ({machines})",
            "slurm": f"Slurm ({machines})"}  # fmt: skip


def picture(runs: dict[str, Path], heads: dict[str, str], path: Path) -> None:
    """Each run's tasks over time (a thin line waiting, a bar running, coloured by node) and
    the three wait CDFs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from workloads.analysis.jobs import load_jobs

    jobs = {name: load_jobs(folder) for name, folder in runs.items()}
    end = max((job.end or 0) for found in jobs.values() for job in found)
    widths = {"width_ratios": [1] * len(runs) + [0.8]}
    figure, axes = plt.subplots(1, len(runs) + 1, figsize=(12, 3.6), dpi=80, gridspec_kw=widths)
    colours = plt.get_cmap("tab10")
    for axis, (name, found) in zip(axes, jobs.items(), strict=False):
        nodes = sorted({job.node for job in found if job.node})
        for row, job in enumerate(found):
            if job.submit is not None and job.start is not None:
                axis.plot([job.submit, job.start], [row, row], color="0.6", linewidth=1)
            if job.start is not None and job.end is not None:
                colour = colours(nodes.index(job.node) % 10) if job.node in nodes else "0.3"
                axis.barh(row, job.end - job.start, left=job.start, height=0.7, color=colour)
        axis.set_title(heads[name], fontsize=10)
        axis.set_xlim(0, end * 1.02)
        axis.set_xlabel("seconds since the replay started")
        axis.invert_yaxis()
    axes[0].set_ylabel("task (line: waiting; bar: running, a colour a node)", fontsize=8)
    cdf = axes[-1]
    for name, found in jobs.items():
        waits = sorted(job.wait for job in found if job.wait is not None)
        share = np.arange(1, len(waits) + 1) / max(1, len(waits))
        cdf.step(waits, share, where="post", label=heads[name])
    cdf.set_title("wait, CDF", fontsize=10)
    cdf.set_xlabel("wait (s)")
    cdf.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    print(f"picture: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--overhead-tasks", type=int, default=20, help="jobs each way, part 1")
    parser.add_argument("--pacing-rate", type=float, default=10.0)
    parser.add_argument("--pacing-seconds", type=float, default=20.0)
    parser.add_argument("--nodes", type=int, default=3, help="swarm and Slurm nodes, part 3")
    parser.add_argument("--tasks", type=int, default=12, help="the trace of part 3")
    parser.add_argument("--rate", type=float, default=0.5)
    parser.add_argument("--duration-range", default="10:20")
    parser.add_argument("--scale", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--figures", type=Path, help="write three-schedulers.png there")
    parser.add_argument("--keep", type=Path, help="copy part 3's run folders there")
    parser.add_argument(
        "--no-comparison", action="store_true", help="parts 1 and 2 only (minutes fewer)"
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/replay_slurm.py needs root (scripts/slurm-up, swarm-nodes)")
    # A time limit's SIGTERM ends the run through its finally blocks: what it set up goes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    before = nodes_up()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        path = trace(
            folder / "trace.json", "--tasks", str(args.tasks), "--mix", "io=1,cpu=2",
            "--rate", f"{args.rate:g}", "--duration-range", args.duration_range,
            "--scale", f"{args.scale:g}", "--seed", str(args.seed),
        )  # fmt: skip
        used = {task["task_name"] for task in json.loads(path.read_text())["tasks"]}
        push_images(sorted({PACED, *used}))
        try:
            slurm_up(1)
            overhead(folder, args.overhead_tasks)
            pacing(folder, args.pacing_rate, args.pacing_seconds)
            if args.no_comparison:
                return
            runs = compare(folder, path, args)
            if args.figures:
                args.figures.mkdir(parents=True, exist_ok=True)
                picture(runs, headings(args.nodes), args.figures / "three-schedulers.png")
            if args.keep:
                for name, source in runs.items():
                    shutil.copytree(source, args.keep / name, dirs_exist_ok=True)
        finally:
            if before:
                subprocess.run([SLURM_UP, str(before)], capture_output=True, check=False)
            else:
                subprocess.run([SLURM_DOWN], capture_output=True, check=False)


if __name__ == "__main__":
    main()
