"""What a replay needs from an engine: one module per engine behind this small interface.

An engine is made by ``connect(name, replay_id, grace)`` and offers:

- ``describe() -> EngineInfo``: its name and version, and its nodes with their capacity.
- ``check(tasks)``: raise ``ReplayInputError`` (one line) for what can never run: an image the
  nodes cannot get, a request larger than every node. Nothing is submitted before it passes.
- ``submit(task)``: create the task; called from one thread per submission, so it must be safe
  to call concurrently and should return as soon as the engine has accepted the task.
- ``watch(emit, done)``: block, calling ``emit(event)`` for every state change with the
  engine's own timestamp (SUBMIT, QUEUE, SCHEDULE, START, FINISH, FAIL, KILL, EVICT, LOST),
  until ``done`` is set.
- ``stop()``: stop every task that has not ended, giving it ``grace`` seconds between SIGTERM
  and SIGKILL (it leaves a partial document), the SIGTERM sent again every ``RESEND_STOP_S``
  while it runs; each such task's end is a KILL.
- ``cleanup()``: remove everything the replay made (containers, services); safe to call more
  than once, and after a failure.

Documents reach ``DIR/tasks/<task_id>/`` because each task's /output is a bind mount of that
folder: on one machine directly, and across machines when DIR is on storage every node mounts
at the same path (NFS, for example). ``docker`` (every task starts when it arrives: the
baseline without admission control) and ``swarm`` (Swarm's scheduler places or queues it) are
the engines today; Kubernetes Jobs through the official client, or Slurm, would be one module
each, with the same five calls.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from workloads.replay.records import Event

ENGINES = ("docker", "swarm")
# Labels on everything a replay makes: how cleanup finds it, and which task it is.
REPLAY_LABEL, TASK_LABEL = "org.cloudai.replay", "org.cloudai.task"
# A stop is sent again this often until the task ends or its grace is spent: a container's
# PID 1 misses a SIGTERM that comes before it has a handler (the kernel drops it).
RESEND_STOP_S = 1.0


class ReplayInputError(Exception):
    """Input that can never replay (no engine, not a manager, a missing image, a request no
    node can hold): one line, exit 2, nothing submitted."""


@dataclass(frozen=True)
class ReplayTask:
    task_id: int
    name: str  # what the engine calls it: cloudai-replay-<replay id>-<task id>
    image: str
    command: str  # run as /bin/sh -c COMMAND, as the real worker does
    cpus: float
    memory_bytes: int
    gpus: int
    output: Path  # bind-mounted at /output


@dataclass(frozen=True)
class Node:
    id: str
    name: str
    cpus: float
    memory_bytes: int
    gpus: int | None  # None: the engine does not say


@dataclass
class EngineInfo:
    name: str
    version: str
    api_version: str
    nodes: list[Node] = field(default_factory=list)


Emit = Callable[[Event], None]


class Engine(Protocol):
    def describe(self) -> EngineInfo: ...
    def check(self, tasks: list[ReplayTask]) -> None: ...
    def submit(self, task: ReplayTask) -> None: ...
    def watch(self, emit: Emit, done: threading.Event) -> None: ...
    def stop(self) -> None: ...
    def cleanup(self) -> None: ...


def connect(name: str, replay_id: str, grace: float) -> Engine:
    """The engine called ``name``, connected to the Docker endpoint of the environment."""
    try:
        import docker
        from docker.errors import DockerException
    except ModuleNotFoundError:
        raise ReplayInputError(
            "replay needs the Docker SDK for Python: pip install 'cloudai-workloads[replay]'"
        ) from None

    try:
        client = docker.from_env(max_pool_size=64, timeout=120)
        client.ping()
    except DockerException as err:
        raise ReplayInputError(f"no Docker engine answers ({_first_line(err)})") from None
    if name == "swarm":
        from workloads.replay.swarm_engine import SwarmEngine

        return SwarmEngine(client, replay_id, grace)
    from workloads.replay.docker_engine import DockerEngine

    return DockerEngine(client, replay_id, grace)


def check_capacity(tasks: list[ReplayTask], nodes: list[Node]) -> None:
    """Every task fits on some node, or it would wait forever."""
    for task in tasks:
        if not any(_fits(task, node) for node in nodes):
            largest = max(nodes, key=lambda node: node.cpus)
            raise ReplayInputError(
                f"task {task.task_id} asks for {task.cpus:g} CPUs, "
                f"{task.memory_bytes / 2**30:.3g} GiB and {task.gpus} GPUs: no node has that "
                f"(the largest: {largest.cpus:g} CPUs, {largest.memory_bytes / 2**30:.3g} GiB)"
            )


def _fits(task: ReplayTask, node: Node) -> bool:
    gpus_ok = node.gpus is None or task.gpus <= node.gpus
    return task.cpus <= node.cpus and task.memory_bytes <= node.memory_bytes and gpus_ok


_FRACTION = re.compile(r"\.(\d+)")


def engine_time(text: str) -> float:
    """An engine's RFC 3339 timestamp (nanoseconds, Z or an offset) as Unix seconds."""
    fraction = _FRACTION.search(text)
    nanos = (fraction.group(1) + "000000000")[:9] if fraction else "0"
    whole = _FRACTION.sub("", text, count=1).replace("Z", "+00:00")
    moment = datetime.fromisoformat(whole)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp() + int(nanos) / 1e9


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def engine_error(error: BaseException) -> str:
    """An engine's error as one line."""
    explanation = getattr(error, "explanation", None)
    return _first_line(Exception(explanation)) if explanation else _first_line(error)


def labels(replay_id: str, task_id: int | None = None) -> dict[str, Any]:
    found = {REPLAY_LABEL: replay_id}
    if task_id is not None:
        found[TASK_LABEL] = str(task_id)
    return found
