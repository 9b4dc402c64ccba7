"""What a replay needs from an engine: the interface every engine implements, and how an
engine plugs in. The replay never knows an engine by name: engines are found through the entry
point group ``cloudai_workloads.engines`` (workloads/replay/plugins.py), each naming an
``EnginePlugin``; ``docker`` and ``swarm`` register that way too (pyproject.toml).

An engine is made by its plug-in's ``connect(EngineSettings)`` and offers six calls:

- ``describe() -> EngineInfo``: its name and version, and its nodes with their capacity.
- ``check(tasks)``: raise ``ReplayInputError`` (one line) for what can never run: an image the
  nodes cannot get, a request larger than every node. Nothing is submitted before it passes.
- ``submit(task)``: create the task; called from one thread per submission, so it must be safe
  to call concurrently and should return as soon as the engine has accepted the task.
- ``watch(emit, done)``: block, calling ``emit(event)`` for every state change with the
  engine's own timestamp (SUBMIT, QUEUE, SCHEDULE, START, FINISH, FAIL, KILL, EVICT, LOST: see
  ``workloads.runfolder.Event``), until ``done`` is set.
- ``stop()``: stop every task that has not ended, giving it ``grace`` seconds between SIGTERM
  and SIGKILL (it leaves a partial document), the SIGTERM sent again every ``RESEND_STOP_S``
  while it runs; each such task's end is a KILL.
- ``cleanup()``: remove everything the replay made (containers, services, jobs); safe to call
  more than once, and after a failure.

Documents reach ``DIR/tasks/<task_id>/`` because each task's /output is that folder (a bind
mount for containers): on one machine directly, and across machines when DIR is on storage
every node mounts at the same path (NFS, for example). docs/schedulers.md shows a whole engine.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from workloads.runfolder import Event, Node
from workloads.runtime.signals import STOP_GRACE
from workloads.sizes import GIB

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
    """A task as an engine submits it: its requests in the envelope's units."""

    task_id: int
    name: str  # what the engine calls it: cloudai-replay-<replay id>-<task id>
    image: str
    command: str  # run as /bin/sh -c COMMAND, as the real worker does
    cpus: float
    memory: int  # bytes
    gpus: int
    output: Path  # its /output: where its results document goes


@dataclass
class EngineInfo:
    name: str
    version: str
    api_version: str
    nodes: list[Node] = field(default_factory=list)
    # The resolution of the engine's timestamps (Slurm's are whole seconds); None: fine.
    time_resolution_s: float | None = None


Emit = Callable[[Event], None]


class Engine(Protocol):
    def describe(self) -> EngineInfo: ...
    def check(self, tasks: list[ReplayTask]) -> None: ...
    def submit(self, task: ReplayTask) -> None: ...
    def watch(self, emit: Emit, done: threading.Event) -> None: ...
    def stop(self) -> None: ...
    def cleanup(self) -> None: ...


@dataclass(frozen=True)
class EngineSettings:
    """What ``connect`` gets: the replay's id (for names and labels that cleanup finds), the
    grace between SIGTERM and SIGKILL, and the values of the engine's own options by name."""

    replay_id: str
    grace: float
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EngineOption:
    """An option of one engine's, offered by ``replay`` when that engine is chosen."""

    flag: str  # --partition
    help: str
    metavar: str = "VALUE"
    repeat: bool = False  # may be given several times: its value is a list
    default: Any = None

    @property
    def name(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")


@dataclass(frozen=True)
class EnginePlugin:
    """What an entry point of ``cloudai_workloads.engines`` names."""

    name: str
    summary: str  # one line, for replay --help
    connect: Callable[[EngineSettings], Engine]
    options: tuple[EngineOption, ...] = ()


def check_capacity(tasks: list[ReplayTask], nodes: list[Node]) -> None:
    """Every task fits on some node, or it would wait forever."""
    for task in tasks:
        if not any(_fits(task, node) for node in nodes):
            largest = max(nodes, key=lambda node: node.cpus)
            raise ReplayInputError(
                f"task {task.task_id} asks for {task.cpus:g} CPUs, "
                f"{task.memory / GIB:.3g} GiB and {task.gpus} GPUs: no node has that "
                f"(the largest: {largest.cpus:g} CPUs, {largest.memory / GIB:.3g} GiB)"
            )


def _fits(task: ReplayTask, node: Node) -> bool:
    gpus_ok = node.gpus is None or task.gpus <= node.gpus
    return task.cpus <= node.cpus and task.memory <= node.memory and gpus_ok


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


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def engine_error(error: BaseException) -> str:
    """An engine's error as one line."""
    explanation = getattr(error, "explanation", None)
    return first_line(Exception(explanation)) if explanation else first_line(error)


def stop_grace_variable(grace: float) -> str:
    """``CLOUDAI_STOP_GRACE=SECONDS`` for a task's environment: the image's supervisor then
    gives a stop the engine's grace, not only its own 4.5 s."""
    return f"{STOP_GRACE}={grace}"


def labels(replay_id: str, task_id: int | None = None) -> dict[str, Any]:
    found = {REPLAY_LABEL: replay_id}
    if task_id is not None:
        found[TASK_LABEL] = str(task_id)
    return found
