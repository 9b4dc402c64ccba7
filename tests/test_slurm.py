"""replay on Slurm: a real cluster of scripts/slurm-up (Debian's slurmctld and slurmd, one node
and three; tests/slurm.py brings it up), the scenarios the other engines pass, and what only
Slurm does: its cgroups bound each task (cpuset, memory), an out-of-memory kill is its own end,
GPUs are a counted resource. Every replay goes through the plain CLI, ``python -m workloads``,
the slurm engine found by its entry point as any engine is. The parsers of Slurm's record need
no cluster (the unit tier)."""

from __future__ import annotations

import csv
import itertools
import json
import math
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ENGINE_TEST_TIMEOUT, ROOT, run_cli, wait_for
from tests.engine import STOP_GRACE_S
from tests.slurm import CGROUPS, DOWN, provisioned, slurm_leftovers
from tests.slurm import run as _run
from tests.test_replay import _events, _reserved_cpu_never_exceeds, _trace, _trace_file
from workloads.replay.engine import ReplayInputError
from workloads.replay.slurm_engine import connect
from workloads.replay.slurm_records import (
    exit_code,
    gpu_count,
    parse_key_values,
    parse_sacct,
    parse_squeue,
    record_from_pairs,
)

pytestmark = pytest.mark.timeout(ENGINE_TEST_TIMEOUT)
SYSTEM = pytest.mark.system  # every test but the parsers' needs the cluster
WORKLOADS = [sys.executable, "-m", "workloads"]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Callable[[int], dict[str, str]]]:
    """``cluster(N)``: a cluster of N nodes; afterwards the one found before, or none."""
    with provisioned() as up:
        yield up


def _replay(trace: Path, run: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return _run(
        *WORKLOADS, "replay", trace, "--engine", "slurm", "--output", run, *extra, timeout=900
    )


def _analyze(run: Path) -> tuple[dict[str, Any], dict[int, dict[str, str]]]:
    """summary.json, and jobs.csv's rows by task id."""
    analyzed = run_cli("analyze", str(run))
    assert analyzed.returncode == 0, analyzed.stderr
    with (run / "jobs.csv").open(newline="") as rows:
        jobs = {int(row["task_id"]): row for row in csv.DictReader(rows)}
    return json.loads((run / "summary.json").read_text()), jobs


def _document(run: Path, task_id: int) -> dict[str, Any]:
    (document,) = (run / "tasks" / str(task_id)).glob("*.json")
    return json.loads(document.read_text())


def _edited_trace(tmp_path: Path, edit: Callable[[list[dict[str, Any]]], None], **kw: Any) -> Path:
    path = _trace_file(tmp_path, **kw)
    trace = json.loads(path.read_text())
    edit(trace["tasks"])
    path.write_text(json.dumps(trace))
    return path


# -- bad input: one line, nothing submitted ------------------------------------------------------
@SYSTEM
def test_no_client_or_no_controller_is_refused(
    tmp_path: Path, cluster: Callable[[int], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster(1)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ReplayInputError, match="sbatch is not on PATH"):
        connect("refused", 5, {})
    monkeypatch.undo()
    conf = tmp_path / "slurm.conf"  # the cluster's, with a controller port nothing listens on
    conf.write_text(Path("/etc/slurm/slurm.conf").read_text() + "SlurmctldPort=6999\n")
    monkeypatch.setenv("SLURM_CONF", str(conf))
    with pytest.raises(ReplayInputError, match="no Slurm controller answers") as refused:
        connect("refused", 5, {})
    assert "\n" not in str(refused.value)


@SYSTEM
@pytest.mark.parametrize(
    ("edit", "extra", "fragment"),
    [
        (lambda tasks: tasks[3].update(cpu_request=3.0), [], "no node has that"),
        (lambda tasks: tasks[3].update(memory_request_gib=64.0), [], "no node has that"),
        (lambda tasks: tasks[3].update(gpu_request=3), [], "no node has that"),
        (lambda tasks: None, ["--partition", "nope"], "no partition 'nope'"),
        (lambda tasks: None, ["--namespace", "no-such-namespace"], "cannot be pulled"),
    ],
    ids=["cpus", "memory", "gpus", "partition", "image"],
)
def test_bad_input_is_refused_before_anything_is_submitted(
    tmp_path: Path,
    cluster: Callable[[int], Any],
    edit: Callable[[list[dict[str, Any]]], None],
    extra: list[str],
    fragment: str,
) -> None:
    cluster(1)
    run = tmp_path / "run"
    before = _run("squeue", "-h", "-t", "all").stdout
    completed = _replay(_edited_trace(tmp_path, edit), run, *extra)
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert completed.stderr.count("\n") == 1 and fragment in completed.stderr, completed.stderr
    assert not (run / "events.jsonl").exists()
    after = _run("squeue", "-h", "-t", "all").stdout
    assert after == before  # no job submitted


# -- real replays ------------------------------------------------------------------------------
@SYSTEM
@pytest.mark.docker
def test_slurm_queues_what_does_not_fit_and_its_cgroups_bound_every_task(
    tmp_path: Path, cluster: Callable[[int], Any], pushed_images: str
) -> None:
    cluster(1)
    run = tmp_path / "run"
    completed = _replay(_trace_file(tmp_path), run)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert slurm_leftovers(run) == []
    summary, rows = _analyze(run)
    replay = json.loads((run / "replay.json").read_text())
    assert (replay["engine"]["name"], replay["outcome"]) == ("slurm", "completed")
    (node,) = replay["nodes"]
    tasks = _trace(run)
    assert summary["states"] == {"FINISH": len(tasks)}
    assert _reserved_cpu_never_exceeds(run)
    events = _events(run)
    assert any(event["event"] == "QUEUE" for event in events)  # Slurm's pending reason
    assert summary["overall"]["wait_s"]["max"] > 3  # at least one task waited for room
    assert {event["node"] for event in events if event["event"] == "SCHEDULE"} == {node["id"]}
    for event in events:  # Slurm's whole seconds, and the replay's own look beside them
        assert event["time"] == int(event["time"]), event
        assert event["event"] != "SUBMIT" or event["observed"] >= event["time"]
    for task in tasks:
        document = _document(run, task["task_id"])
        assert document["status"] == "completed"
        limits = document["limits"]  # Slurm's cgroups, seen from inside the container
        assert len(limits["cpuset"]) == math.ceil(task["cpu_request"])
        assert limits["memory_limit"] == round(task["memory_request_gib"] * 2**30)
        # analyze: enforced because Slurm made it so (a cpuset of the CPUs asked for)
        assert rows[task["task_id"]]["enforced"] == "True"


@SYSTEM
@pytest.mark.docker
def test_a_task_over_its_memory_is_killed_by_slurm(
    tmp_path: Path, cluster: Callable[[int], Any], pushed_images: str
) -> None:
    cluster(1)

    def over_memory(tasks: list[dict[str, Any]]) -> None:
        tasks[0].update(command="python -c 'x = bytearray(700 * 2**20)'", memory_request_gib=0.25)

    run = tmp_path / "run"
    completed = _replay(_edited_trace(tmp_path, over_memory, tasks=2), run)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    ends = {e["task_id"]: e for e in _events(run) if e["event"] in ("FINISH", "FAIL")}
    first, second = (task["task_id"] for task in _trace(run))
    assert ends[first]["event"] == "FAIL" and ends[first]["exit_code"] == 137
    assert "out of memory" in ends[first]["detail"] and "OUT_OF_MEMORY" in ends[first]["detail"]
    assert ends[second]["event"] == "FINISH"
    assert slurm_leftovers(run) == []


@SYSTEM
def test_gpu_tasks_queue_on_the_gpu_count_while_cpus_are_free(
    tmp_path: Path, cluster: Callable[[int], Any]
) -> None:
    """Each node has 2 GPUs (scripts/slurm-up) and 2 CPUs: tasks of 1 CPU and 2 GPUs run one at
    a time. The installed package runs them (--mode process): no image is needed."""
    cluster(1)

    def on_gpus(tasks: list[dict[str, Any]]) -> None:
        for task in tasks:
            task.update(cpu_request=1.0, gpu_request=2, memory_request_gib=1.0)

    run = tmp_path / "run"
    completed = _replay(_edited_trace(tmp_path, on_gpus, tasks=3), run, "--mode", "process")
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    events = _events(run)
    assert {e["event"] for e in events if e["event"] in ("FINISH", "FAIL", "KILL")} == {"FINISH"}
    assert "Resources" in {e.get("detail") for e in events if e["event"] == "QUEUE"}
    runs = sorted(
        (start["time"], end["time"])
        for start in events
        if start["event"] == "START"
        for end in events
        if end["event"] == "FINISH" and end["task_id"] == start["task_id"]
    )
    assert len(runs) == 3
    for (_, ended), (began, _) in itertools.pairwise(runs):
        assert began >= ended  # one at a time, with a CPU free all along
    for task in _trace(run):  # the package in the job, in the job's cgroups
        limits = _document(run, task["task_id"])["limits"]
        assert (len(limits["cpuset"]), limits["memory_limit"]) == (1, 2**30)
    assert slurm_leftovers(run) == []


@SYSTEM
@pytest.mark.docker
def test_sigterm_stops_the_jobs_with_the_grace_and_leaves_nothing(
    tmp_path: Path, cluster: Callable[[int], Any], pushed_images: str
) -> None:
    cluster(1)
    run = tmp_path / "run"
    trace = _trace_file(tmp_path, "--duration-range", "120:120", tasks=4)
    command = [*WORKLOADS, "replay", trace, "--engine", "slurm", "--output", run,
               "--grace", str(STOP_GRACE_S)]  # fmt: skip
    with subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True) as process:
        log = run / "events.jsonl"
        wait_for(lambda: log.exists() and '"START"' in log.read_text(), 120, "a job to start")
        time.sleep(2)  # the workload is past its start-up
        process.send_signal(signal.SIGTERM)
        stderr = process.communicate(timeout=120)[1]
    assert process.returncode == 128 + signal.SIGTERM, stderr
    record = json.loads((run / "replay.json").read_text())
    assert [record[key] for key in ("outcome", "signal", "started_without_document")] == [
        "interrupted", "SIGTERM", []
    ]  # fmt: skip
    kinds: dict[int, set[str]] = {}
    for event in _events(run):
        kinds.setdefault(event["task_id"], set()).add(event["event"])
    for task_id, seen in kinds.items():  # running jobs stopped, with a partial document
        assert seen & {"KILL", "FINISH", "FAIL"} == {"KILL"}, (task_id, seen)
        if "START" in seen:
            assert _document(run, task_id)["status"] == "terminated"
    assert slurm_leftovers(run) == []


@SYSTEM
@pytest.mark.docker
def test_the_same_replay_spreads_across_three_nodes(
    tmp_path: Path, cluster: Callable[[int], Any], pushed_images: str
) -> None:
    """scripts/slurm-up 3: three slurmd on this machine; Slurm places the tasks on all three and
    queues what does not fit. scripts/slurm-down then leaves nothing."""
    settings = cluster(3)
    assert settings["NODES"] == "cloudai-n[1-3]"
    run = tmp_path / "run"
    completed = _replay(_trace_file(tmp_path), run, "--partition", settings["PARTITION"])
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    summary, _ = _analyze(run)
    replay = json.loads((run / "replay.json").read_text())
    assert len(replay["nodes"]) == 3
    assert summary["states"] == {"FINISH": len(_trace(run))}
    assert _reserved_cpu_never_exceeds(run)
    used = {e["node"] for e in _events(run) if e["event"] == "SCHEDULE"}
    assert used == {node["id"] for node in replay["nodes"]}
    assert any(event["event"] == "QUEUE" for event in _events(run))
    assert slurm_leftovers(run) == []
    down = _run(DOWN)
    assert down.returncode == 0, down.stderr
    assert not list(CGROUPS.glob("*/slurm_*")) and not list(CGROUPS.glob("*/cloudai-podman"))
    assert not Path("/run/cloudai-slurm").exists()  # no daemon's pid file: none runs


# -- Slurm's record as the engine reads it (no cluster needed) ------------------------------------
@pytest.mark.unit
def test_slurm_records_are_read_from_every_source() -> None:
    listing = (
        "20|PENDING|Priority|1796211378|N/A|N/A|1796211379||cloudai-replay r task 1|\n"
        "21|COMPLETED|None|1796211378|1796211380|1796211390|1796211380|cloudai-n2|x|\n"
    )
    pending, done = parse_squeue(listing).values()
    assert (pending.state, pending.reason, pending.evaluated, pending.ran) == (
        "PENDING", "Priority", 1796211379.0, False
    )  # fmt: skip
    assert (done.ended, done.ran, done.nodes, done.start, done.end) == (
        True, True, "cloudai-n2", 1796211380.0, 1796211390.0
    )  # fmt: skip
    line = (
        "JobId=11 UserId=root(0) JobState=OUT_OF_MEMORY Partition=cloudai "
        "StartTime=2026-12-02T11:30:09 EndTime=2026-12-02T11:30:11 NodeList=cloudai-n1 "
        "SubmitTime=2026-12-02T11:30:08 ExitCode=0:125"
    )  # the job-completion log: the controller's local time
    oom = record_from_pairs(parse_key_values(line))
    assert (oom.state, oom.exit_code, oom.exit_status) == ("OUT_OF_MEMORY", 137, "0:125")
    assert oom.end is not None and oom.start is not None and oom.end - oom.start == 2
    accounted = parse_sacct("7|CANCELLED by 0|0:15|1796211378|1796211380|1796211385|cloudai-n1\n")
    assert (accounted["7"].state, accounted["7"].exit_code) == ("CANCELLED", 143)
    assert [exit_code(status) for status in ("0:0", "3:0", "143:0", "0:9", "")] == [
        0, 3, 143, 137, None
    ]  # fmt: skip
    assert [gpu_count(gres) for gres in ("gpu:2", "gpu:a100:4(S:0-1),gpu:v100:2", "(null)")] == [
        2, 6, 0
    ]  # fmt: skip
