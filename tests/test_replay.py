"""replay: open-loop pacing, bad input, and real replays on a Docker engine and a one-node swarm
(then analyzed)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import docker
import jsonschema
import pytest

from tests.conftest import ROOT, run_cli, wait_for
from tests.engine import (
    BASE_IMAGE,
    NAMESPACE,
    REGISTRY,
    STOP_GRACE_S,
    leftovers,
    swarm_state,
)
from workloads.analysis import SUMMARY_SCHEMA_PATH
from workloads.replay.engine import EngineInfo, EngineSettings, ReplayTask
from workloads.replay.images import images_to_replay
from workloads.replay.plugins import load
from workloads.replay.runner import Replayer
from workloads.runfolder import Event, Node, TraceTask

pytestmark = pytest.mark.contract


# -- pacing, with an engine that answers slowly ---------------------------------------------------
class SlowEngine:
    """Takes ``delay`` seconds to accept each task, then reports it started and finished."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.emit: Any = None

    def describe(self) -> EngineInfo:
        return EngineInfo("slow", "1", "1", [Node(id="n", name="n", cpus=2.0, memory=1 << 30)])

    def check(self, tasks: list[ReplayTask]) -> None: ...

    def submit(self, task: ReplayTask) -> None:
        time.sleep(self.delay)
        for kind in ("SUBMIT", "START", "FINISH"):
            self.emit(Event(time=time.time(), task_id=task.task_id, event=kind))

    def watch(self, emit: Any, done: threading.Event) -> None:
        self.emit = emit
        done.wait()

    def stop(self) -> None: ...
    def cleanup(self) -> None: ...


def _trace_task(task_id: int, submit: float) -> TraceTask:
    return TraceTask(
        submit_time=submit, task_id=task_id, task_name="cpu-1", category="cpu",
        task_type="cpu-heavy", image="i", command="c", cpu_request=1.0, memory_request_gib=1.0,
        disk_request_gib=0.0, gpu_request=0, duration_seconds=1.0, seed=1,
    )  # fmt: skip


def _replay_task(task_id: int, folder: Path) -> ReplayTask:
    return ReplayTask(task_id, f"t{task_id}", "i", "c", 1.0, 1 << 30, 0, folder)


def test_a_slow_engine_never_delays_the_next_submission(tmp_path: Path) -> None:
    # 20 submissions 50 ms apart to an engine that takes 3 s to accept each one.
    pairs = [(_trace_task(i, 0.05 * i), _replay_task(i, tmp_path)) for i in range(20)]
    engine = SlowEngine(delay=3.0)
    replayer = Replayer(engine, pairs, tmp_path, speed=1.0, on_start=lambda _: None)
    replayer.play()
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    submits = [event for event in events if event["event"] == "SUBMIT"]
    assert len(submits) == 20
    lags = [event["submitted"] - event["planned"] for event in submits]
    # Open loop: no submission waited for an earlier one to be accepted (a closed loop would
    # lag by up to 19 calls, 56 s). How small the lag is: bench/replay.py.
    assert max(lags) < engine.delay, lags
    assert replayer.states == {"FINISH": 20}


def test_speed_divides_the_submit_times(tmp_path: Path) -> None:
    pairs = [(_trace_task(i, 1.0 * i), _replay_task(i, tmp_path)) for i in range(3)]
    replayer = Replayer(SlowEngine(0.0), pairs, tmp_path, speed=4.0, on_start=lambda _: None)
    replayer.play()
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [e["planned"] for e in events if e["event"] == "SUBMIT"] == [0.0, 0.25, 0.5]


# -- bad input: one line, exit 2, nothing submitted --------------------------------------------
def _trace_file(folder: Path, *extra: str, tasks: int = 12, seed: int = 7) -> Path:
    path = folder / "trace.json"
    completed = run_cli(
        "trace", "--tasks", str(tasks), "--mix", "cpu-1=1,cpu-3=1,cpu-5=1,io-1=1,io-3=1",
        "--rate", "2", "--duration-range", "3:6", "--scale", "0.05", "--seed", str(seed),
        "--registry", REGISTRY, "--namespace", NAMESPACE, "--output", str(path), *extra,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    return path


def _replay(*args: str, env: dict[str, str] | None = None) -> Any:
    return run_cli("replay", *args, env=env, timeout=600)


def _assert_refused(completed: Any, fragment: str, output: Path) -> None:
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert completed.stderr.count("\n") == 1 and fragment in completed.stderr, completed.stderr
    assert not (output / "events.jsonl").exists()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ('{"tasks": [{"task_id": 1}]}', "submit_time: Field required"),
        ("not a trace\n", "not a trace"),
        ('{"tasks": []}', "no tasks"),
    ],
)
def test_a_malformed_trace_is_refused(tmp_path: Path, content: str, fragment: str) -> None:
    trace = tmp_path / "bad.json"
    trace.write_text(content)
    output = tmp_path / "run"
    _assert_refused(_replay(str(trace), "--output", str(output)), fragment, output)


def test_no_engine_is_refused(tmp_path: Path) -> None:
    output = tmp_path / "run"
    completed = _replay(
        str(_trace_file(tmp_path)), "--output", str(output),
        env={"DOCKER_HOST": f"unix://{tmp_path}/nothing.sock"},
    )  # fmt: skip
    _assert_refused(completed, "no Docker engine answers", output)


def _engine_up() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


needs_engine = pytest.mark.skipif(not _engine_up(), reason="no Docker engine (scripts/docker-up)")


@pytest.mark.docker
@needs_engine
def test_an_existing_folder_or_a_missing_image_is_refused(
    tmp_path: Path,
    pushed_images: str,
) -> None:
    trace = _trace_file(tmp_path)
    full = tmp_path / "full"
    full.mkdir()
    (full / "something").write_text("")
    _assert_refused(_replay(str(trace), "--output", str(full)), "not an empty folder", full)
    output = tmp_path / "run"
    missing = _replay(str(trace), "--output", str(output), "--namespace", "no-such-namespace")
    _assert_refused(missing, "is neither on this engine nor in its registry", output)
    assert not output.exists()
    assert leftovers() == []


@pytest.mark.docker
@needs_engine
def test_not_a_swarm_manager_is_refused(tmp_path: Path) -> None:
    if swarm_state() == "active":
        pytest.skip("this engine is in a swarm already")
    output = tmp_path / "run"
    completed = _replay(str(_trace_file(tmp_path)), "--engine", "swarm", "--output", str(output))
    _assert_refused(completed, "not a swarm manager", output)


# -- real replays ----------------------------------------------------------------------------
def _events(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]


def _reserved_cpu_never_exceeds(run: Path) -> bool:
    """At every instant of the event log, the CPU requested by the tasks running on each node
    fits in that node (ends before starts at the same instant)."""
    capacity = {
        node["id"]: node["cpus"] for node in json.loads((run / "replay.json").read_text())["nodes"]
    }
    requests = {task["task_id"]: task["cpu_request"] for task in _trace(run)}
    placed: dict[int, str] = {}
    running: dict[int, float] = {}
    for event in sorted(_events(run), key=lambda e: (e["time"], e["event"] == "START")):
        task_id = event["task_id"]
        if event["event"] == "SCHEDULE":
            placed[task_id] = event["node"]
        elif event["event"] == "START":
            running[task_id] = requests[task_id]
        elif event["event"] in ("FINISH", "FAIL", "KILL", "EVICT", "LOST"):
            running.pop(task_id, None)
        for node, cpus in capacity.items():
            used = sum(cpu for task, cpu in running.items() if placed.get(task) == node)
            if used > cpus + 1e-9:
                return False
    return True


def _trace(run: Path) -> list[dict[str, Any]]:
    return json.loads((run / "trace.json").read_text())["tasks"]


def _replay_and_analyze(
    engine: str, tmp_path: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[Path, dict[str, Any]]:
    trace, run = _trace_file(tmp_path), tmp_path / "run"
    completed = _replay(str(trace), "--engine", engine, "--output", str(run), *extra, env=env)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert leftovers() == []
    analyzed = run_cli("analyze", str(run))
    assert analyzed.returncode == 0, analyzed.stderr
    summary = json.loads((run / "summary.json").read_text())
    jsonschema.validate(summary, json.loads(SUMMARY_SCHEMA_PATH.read_text()))
    return run, summary


def _container_log(run: Path, task_id: int) -> str:
    """What a task's container said (the docker engine keeps it), to show with a failure."""
    log = run / "tasks" / str(task_id) / "container.log"
    return f"task {task_id}: " + (log.read_text()[-2000:] if log.exists() else "(no container.log)")


def _common_assertions(run: Path, summary: dict[str, Any], engine: str) -> None:
    replay = json.loads((run / "replay.json").read_text())
    assert (replay["engine"]["name"], replay["outcome"]) == (engine, "completed")
    tasks = _trace(run)
    for task in tasks:  # every task left its document
        documents = list((run / "tasks" / str(task["task_id"])).glob("*.json"))
        assert len(documents) == 1, task
        assert json.loads(documents[0].read_text())["status"] == "completed"
    rows = (run / "jobs.csv").read_text().splitlines()
    assert len(rows) == len(tasks) + 1
    assert summary["states"] == {"FINISH": len(tasks)}
    assert summary["submit_lag_s"]["count"] == len(tasks)  # how small: bench/replay.py
    assert summary["enforcement_violations"] == 0  # the limits reached the cgroups


@pytest.mark.docker
@needs_engine
def test_replay_on_docker_starts_every_task_when_it_arrives(
    tmp_path: Path,
    pushed_images: str,
) -> None:
    run, summary = _replay_and_analyze("docker", tmp_path)
    _common_assertions(run, summary, "docker")
    assert not [e for e in _events(run) if e["event"] == "QUEUE"]  # no admission control
    for task in _trace(run):  # each container's output outlives its removal, beside its document
        folder = run / "tasks" / str(task["task_id"])
        (document,) = folder.glob("*.json")
        assert document.name in (folder / "container.log").read_text()


@pytest.mark.docker
@needs_engine
def test_replay_on_a_swarm_queues_what_does_not_fit(
    tmp_path: Path,
    pushed_images: str,
    one_node_swarm: None,
) -> None:
    run, summary = _replay_and_analyze("swarm", tmp_path)
    _common_assertions(run, summary, "swarm")
    replay = json.loads((run / "replay.json").read_text())
    assert _reserved_cpu_never_exceeds(run)
    events = _events(run)
    assert any(event["event"] == "QUEUE" for event in events)
    assert summary["overall"]["wait_s"]["max"] > 3  # at least one task waited for room
    nodes = {event["node"] for event in events if event["event"] == "SCHEDULE"}
    assert nodes == {replay["nodes"][0]["id"]}


@pytest.mark.docker
@needs_engine
@pytest.mark.parametrize("engine", ["docker", "swarm"])
def test_sigterm_stops_the_tasks_with_the_grace_and_leaves_nothing(
    tmp_path: Path,
    engine: str,
    pushed_images: str,
    one_node_swarm: None,
) -> None:
    trace = _trace_file(tmp_path, "--duration-range", "120:120", tasks=4)
    run = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "workloads", "replay", str(trace), "--engine", engine,
         "--output", str(run), "--grace", str(STOP_GRACE_S)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    events = run / "events.jsonl"
    wait_for(lambda: events.exists() and '"START"' in events.read_text(), 60, "a task to start")
    time.sleep(2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    replay = json.loads((run / "replay.json").read_text())
    assert (replay["outcome"], replay["signal"]) == ("interrupted", "SIGTERM")
    missing = replay["started_without_document"]
    assert missing == [], [_container_log(run, task_id) for task_id in missing]
    started = {e["task_id"] for e in _events(run) if e["event"] == "START"}
    assert started
    for task_id in started:  # the running tasks were stopped, and wrote partial documents
        (document,) = (run / "tasks" / str(task_id)).glob("*.json")
        assert json.loads(document.read_text())["status"] == "terminated"
    ended = {e["task_id"]: e["event"] for e in _events(run) if e["event"] in ("KILL", "FINISH")}
    assert set(ended.values()) == {"KILL"}
    assert leftovers() == []


# PID 1 of a container that has no handler yet (a workload's first moments) never sees a
# SIGTERM: the kernel drops it. Stand-in: a first process deaf to SIGTERM for its first 1.5 s.
DEAF_AT_FIRST = (
    "exec python3 -c 'import signal, sys, time; "
    "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(1.5); "
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(143)); time.sleep(60)'"
)


@pytest.mark.docker
@needs_engine
def test_a_stop_is_sent_again_until_the_task_hears_it(tmp_path: Path) -> None:
    replay_id = f"deaf-{tmp_path.name[-12:]}"
    engine = load("docker").connect(EngineSettings(replay_id, grace=STOP_GRACE_S))
    task = ReplayTask(0, f"cloudai-replay-{replay_id}-0", BASE_IMAGE, DEAF_AT_FIRST,
                      cpus=0.5, memory=128 * 2**20, gpus=0, output=tmp_path)  # fmt: skip
    try:
        engine.check([task])  # as a replay does first: pulls the image on a new machine
        engine.submit(task)
        engine.stop()
        state = docker.from_env().api.inspect_container(task.name)["State"]
        assert state["ExitCode"] == 143  # heard within the grace; 137 would be its SIGKILL
    finally:
        engine.cleanup()
    assert leftovers() == []


NODES = ROOT / "scripts" / "swarm-nodes"


@pytest.mark.docker
@needs_engine
def test_the_same_replay_runs_across_three_nodes(
    tmp_path: Path,
    pushed_images: str,
) -> None:
    """scripts/swarm-nodes: three dockerds in network namespaces, one swarm; Swarm places the
    tasks on all three and queues what does not fit."""
    up = subprocess.run([NODES, "up", "3"], capture_output=True, text=True, check=False)
    assert up.returncode == 0, up.stderr
    settings = dict(line.split("=", 1) for line in up.stdout.split())
    try:
        run, summary = _replay_and_analyze(
            "swarm", tmp_path, "--registry", settings["REGISTRY"],
            env={"DOCKER_HOST": settings["DOCKER_HOST"]},
        )  # fmt: skip
        _common_assertions(run, summary, "swarm")
        replay = json.loads((run / "replay.json").read_text())
        assert len(replay["nodes"]) == 3
        assert _reserved_cpu_never_exceeds(run)
        used = {e["node"] for e in _events(run) if e["event"] == "SCHEDULE"}
        assert used == {node["id"] for node in replay["nodes"]}
    finally:
        down = subprocess.run([NODES, "down"], capture_output=True, text=True, check=False)
    assert down.returncode == 0, down.stderr
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    assert "cloudai-node" not in namespaces.stdout


@pytest.mark.docker
@needs_engine
def test_a_swarm_replay_puts_its_images_on_every_node_before_any_task(
    tmp_path: Path,
    pushed_images: str,
) -> None:
    """scripts/swarm-nodes starts every node from an empty data-root: once the engine's check
    has run, every node holds the replay's image, so no task's start on a cold node includes
    a pull, and the jobs that pulled it are gone."""
    from workloads.replay.swarm_engine import PULL_LABEL, SwarmEngine

    up = subprocess.run([NODES, "up", "3"], capture_output=True, text=True, check=False)
    assert up.returncode == 0, up.stderr
    settings = dict(line.split("=", 1) for line in up.stdout.split())
    image = f"{settings['REGISTRY']}/{NAMESPACE}/cloudai-cpu-intensive:1"
    sockets = [f"unix:///var/run/cloudai-nodes/cloudai-node{number}.sock" for number in (1, 2, 3)]
    nodes = [docker.DockerClient(base_url=socket) for socket in sockets]
    try:
        assert not any(_holds(node, image) for node in nodes)  # cold, all three
        engine = SwarmEngine(nodes[0], "pull-test", grace=5.0)
        task = ReplayTask(
            0, "cloudai-replay-pull-test-0", image, "true", 0.5, 256 << 20, 0, tmp_path
        )
        engine.check([task])
        assert all(_holds(node, image) for node in nodes)
        assert nodes[0].services.list(filters={"label": PULL_LABEL}) == []
    finally:
        for node in nodes:
            node.close()
        down = subprocess.run([NODES, "down"], capture_output=True, text=True, check=False)
    assert down.returncode == 0, down.stderr


def _holds(node: docker.DockerClient, image: str) -> bool:
    try:
        node.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


# -- which images a replay runs -------------------------------------------------------------
def _named(image: str) -> TraceTask:
    return _trace_task(0, 0.0).model_copy(update={"image": image})


@pytest.mark.unit
def test_the_shell_never_replaces_the_images_a_trace_names() -> None:
    trace = [_named("localhost:5000/team/cloudai-cpu-intensive:1")]
    environment = {"REGISTRY": "ghcr.io", "NAMESPACE": "other", "DOCKER_USERNAME": "me"}
    moved, rewrites = images_to_replay(trace, None, None, environment)
    assert moved == trace and rewrites == []


@pytest.mark.unit
def test_flags_move_the_images_and_every_rewrite_is_recorded() -> None:
    trace = [_named("localhost:5000/team/cloudai-cpu-intensive:1")] * 2
    moved, rewrites = images_to_replay(trace, "registry.example", None, {})
    assert {task.image for task in moved} == {"registry.example/team/cloudai-cpu-intensive:1"}
    assert [(r.trace, r.reason) for r in rewrites] == [(trace[0].image, "--registry")]


@pytest.mark.unit
def test_the_shell_fills_only_what_an_image_name_leaves_out() -> None:
    moved, rewrites = images_to_replay(
        [_named("cloudai-cpu-intensive:1")], None, None, {"REGISTRY": "r", "NAMESPACE": "n"}
    )
    assert moved[0].image == "r/n/cloudai-cpu-intensive:1"
    assert "$REGISTRY" in rewrites[0].reason
