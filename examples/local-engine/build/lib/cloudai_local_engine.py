"""``replay --engine local``: each task a process on this machine, started when it arrives.

A worked example of an engine (docs/schedulers.md, "Writing an engine"): the six calls of
``workloads.replay.engine``, the events they report, and a task's document in its folder. It
runs the task's command (``python cpu_process_3.py --duration 30 ...``, what the images run)
with this machine's Python, from the package's launchers, its results going to the task's
folder. Like ``docker``, it queues nothing and enforces no limit; unlike it, it needs no image.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

import workloads
from workloads.replay.engine import (
    RESEND_STOP_S,
    Emit,
    EngineInfo,
    EnginePlugin,
    EngineSettings,
    ReplayInputError,
    ReplayTask,
    check_capacity,
)
from workloads.runfolder import Event, Node

LAUNCHERS = Path(workloads.__file__).resolve().parent / "launchers"
POLL_SECONDS = 0.1


class LocalEngine:
    def __init__(self, settings: EngineSettings) -> None:
        self.grace = settings.grace
        self.node = socket.gethostname()
        self._lock = threading.Lock()
        self._running: dict[int, subprocess.Popen[bytes]] = {}
        self._stopping: set[int] = set()
        self._emit: Emit | None = None
        self._pending: list[Event] = []  # events before watch() began

    # -- the six calls ----------------------------------------------------------------------
    def describe(self) -> EngineInfo:
        memory = psutil.virtual_memory().total
        node = Node(id=self.node, name=self.node, cpus=os.cpu_count() or 1, memory=memory, gpus=0)
        return EngineInfo("local", workloads.__version__, "1", [node])

    def check(self, tasks: list[ReplayTask]) -> None:
        check_capacity(tasks, self.describe().nodes)
        for task in tasks:
            program = shlex.split(task.command)[:1]
            if program != ["python"]:
                raise ReplayInputError(f"task {task.task_id}: not a python command: {task.command}")

    def submit(self, task: ReplayTask) -> None:
        arguments = shlex.split(task.command)[1:]
        environment = {**os.environ, "CLOUDAI_RESULTS_DIR": str(task.output)}
        process = subprocess.Popen(
            [sys.executable, *arguments],
            cwd=LAUNCHERS,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: a stop reaches all of it
        )
        now = time.time()
        with self._lock:
            self._running[task.task_id] = process
        self._record(Event(time=now, task_id=task.task_id, event="SUBMIT"))
        self._record(Event(time=now, task_id=task.task_id, event="SCHEDULE", node=self.node))
        self._record(Event(time=now, task_id=task.task_id, event="START"))

    def watch(self, emit: Emit, done: threading.Event) -> None:
        with self._lock:
            self._emit, pending = emit, self._pending
        for event in pending:
            emit(event)
        while not done.wait(POLL_SECONDS):
            self._reap()
        self._reap()

    def stop(self) -> None:
        """SIGTERM to every running task, again every RESEND_STOP_S, SIGKILL after the grace."""
        with self._lock:
            running = dict(self._running)
            self._stopping |= set(running)
        deadline = time.monotonic() + self.grace
        while running and time.monotonic() < deadline:
            for process in running.values():
                _signal(process, signal.SIGTERM)
            time.sleep(RESEND_STOP_S)
            running = {key: p for key, p in running.items() if p.poll() is None}
        for process in running.values():
            _signal(process, signal.SIGKILL)
            process.wait()
        self._reap()

    def cleanup(self) -> None:
        with self._lock:
            running = list(self._running.values())
        for process in running:
            _signal(process, signal.SIGKILL)
            process.wait()

    # -- what the calls share ---------------------------------------------------------------
    def _record(self, event: Event) -> None:
        with self._lock:
            emit = self._emit
            if emit is None:
                self._pending.append(event)
        if emit is not None:
            emit(event)

    def _reap(self) -> None:
        with self._lock:
            ended = {key: p for key, p in self._running.items() if p.poll() is not None}
            for key in ended:
                del self._running[key]
        for task_id, process in ended.items():
            code = process.returncode if process.returncode >= 0 else 128 - process.returncode
            kind = "KILL" if task_id in self._stopping else "FINISH" if code == 0 else "FAIL"
            self._record(Event(time=time.time(), task_id=task_id, event=kind, exit_code=code))


def _signal(process: subprocess.Popen[bytes], number: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it has ended
        os.killpg(process.pid, number)


PLUGIN = EnginePlugin(
    name="local",
    summary="every task a process on this machine, started when it arrives (an example)",
    connect=LocalEngine,
)
