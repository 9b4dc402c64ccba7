"""Play a trace against an engine: open-loop pacing on an absolute clock, the engine's own record
of every state change, each task's documents in its folder, and nothing left behind.

Task i is submitted at t0 + submit_time_i / speed, each from a thread of its own, so a slow
engine call never delays the next submission (clusterloader2's Poisson tuning set works the
same way). SIGINT or SIGTERM stops submitting, stops the running tasks with the grace (they
leave partial documents), removes what the replay made and still writes the records.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import workloads
from workloads.jsonio import new_id, timestamp
from workloads.replay import plugins
from workloads.replay.engine import (
    Engine,
    EngineInfo,
    EngineSettings,
    ReplayInputError,
    ReplayTask,
    engine_error,
)
from workloads.replay.images import images_to_replay
from workloads.runfolder import (
    REPLAY_SCHEMA_VERSION,
    TERMINAL,
    TRACE_FILE,
    EngineRecord,
    Event,
    EventLog,
    ImageRewrite,
    ReplayRecord,
    TraceError,
    TraceFile,
    TraceSource,
    TraceTask,
    load_trace,
    task_folder,
)

EXIT_DONE, EXIT_FAILED = 0, 1
STATUS_EVERY = 10.0  # seconds between status lines
# After a stop, the engine has the grace plus this long to report the tasks' ends.
_STOP_MARGIN = 15.0


@dataclass(frozen=True)
class ReplayOptions:
    trace: Path
    engine: str
    output: Path
    speed: float = 1.0
    grace: float = 10.0
    registry: str | None = None  # with namespace: where the images are, instead of the trace's
    namespace: str | None = None
    engine_options: Mapping[str, Any] = field(default_factory=dict)


def _check_output(output: Path) -> None:
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise ReplayInputError(f"{output} exists and is not an empty folder: give a new one")


def _create_output(output: Path) -> None:
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ReplayInputError(f"cannot create {output}: {err.strerror}") from None


def _replay_tasks(trace: list[TraceTask], output: Path, replay_id: str) -> list[ReplayTask]:
    return [
        ReplayTask(
            task_id=task.task_id,
            name=f"cloudai-replay-{replay_id.lower()}-{task.task_id}",
            image=task.image,
            command=task.command,
            cpus=task.cpu_request,
            memory=task.memory_bytes,
            gpus=task.gpu_request,
            output=task_folder(output, task.task_id).resolve(),
        )
        for task in trace
    ]


class Replayer:
    """One replay in progress: pacing, submissions, the engine's events, stopping."""

    def __init__(
        self,
        engine: Engine,
        tasks: list[tuple[TraceTask, ReplayTask]],
        run: Path,
        speed: float,
        on_start: Callable[[float], None],
        replay_id: str = "",
    ) -> None:
        self.engine, self.tasks, self.run, self.speed = engine, tasks, run, speed
        self.replay_id = replay_id
        self._on_start = on_start  # called with the start time once the clock runs
        self.stop = threading.Event()  # a signal: stop submitting, stop the tasks
        self.signal: int | None = None
        self.done = threading.Event()  # the engine watch may end
        self.all_ended = threading.Event()
        self._lock = threading.Lock()
        self._submissions: dict[int, dict[str, float]] = {}
        self._submitted: set[int] = set()
        self._started: set[int] = set()
        self._ended: set[int] = set()
        self.states: Counter[str] = Counter()
        self.start_time = 0.0
        self._origin = 0.0
        self.log: EventLog | None = None

    # -- events from the engine ----------------------------------------------------------------
    def emit(self, event: Event) -> None:
        with self._lock:
            if event.event == "SUBMIT" and event.submitted is None:
                event = event.model_copy(update=self._submissions.get(event.task_id, {}))
            if event.event == "START":
                self._started.add(event.task_id)
            if event.event in TERMINAL:
                if event.task_id in self._ended:
                    return
                self._ended.add(event.task_id)
                self.states[event.event] += 1
                if len(self._ended) == len(self.tasks):
                    self.all_ended.set()
        assert self.log is not None
        self.log.write(event)

    @property
    def started(self) -> set[int]:
        with self._lock:
            return set(self._started)

    def _now(self) -> float:
        return time.monotonic() - self._origin

    # -- the replay ---------------------------------------------------------------------------
    def play(self) -> None:
        self.start_time, self._origin = time.time(), time.monotonic()
        self.log = EventLog(self.run, self.replay_id, self.start_time)
        self._on_start(self.start_time)
        watcher = threading.Thread(
            target=self.engine.watch, args=(self.emit, self.done), name="engine-watch", daemon=True
        )
        watcher.start()
        submitters = []
        try:
            for trace_task, task in self.tasks:
                planned = trace_task.submit_time / self.speed
                if self.stop.wait(max(0.0, planned - self._now())):
                    break
                submitter = threading.Thread(target=self._submit, args=(task, planned))
                submitter.start()
                submitters.append(submitter)
            self._wait_for_the_end(watcher)
        except BaseException:
            self.stop.set()  # a failed replay stops its tasks with the grace too
            raise
        finally:
            try:
                for submitter in submitters:
                    submitter.join(timeout=60)
                if self.stop.is_set():
                    self._stop_tasks()
            finally:  # whatever failed, the watch ends and the log is closed
                self.done.set()
                watcher.join(timeout=30)
                self.log.close()

    def _submit(self, task: ReplayTask, planned: float) -> None:
        with self._lock:
            self._submissions[task.task_id] = {
                "planned": round(planned, 6),
                "submitted": round(self._now(), 6),
            }
            self._submitted.add(task.task_id)
        try:
            self.engine.submit(task)
        except Exception as err:  # the engine refused it: the task failed, the replay goes on
            submission = self._submissions[task.task_id]
            detail = f"submit: {engine_error(err)}"
            failed = Event(time=time.time(), task_id=task.task_id, event="FAIL", detail=detail)
            self.emit(failed.model_copy(update={**submission, "clock": "replay"}))

    def _wait_for_the_end(self, watcher: threading.Thread) -> None:
        next_status = STATUS_EVERY
        while not self.all_ended.wait(0.2) and not self.stop.is_set():
            if not watcher.is_alive():  # no more events will come: the rest would never end
                raise RuntimeError("the engine stopped reporting events")
            if self._now() >= next_status:
                next_status += STATUS_EVERY
                self._status_line()

    def _status_line(self) -> None:
        with self._lock:
            submitted, ended = len(self._submitted), len(self._ended)
        print(
            f"replay: {self._now():.0f} s: {submitted}/{len(self.tasks)} submitted, {ended} ended",
            flush=True,
        )

    def _stop_tasks(self) -> None:
        print("replay: stopping: the running tasks get the grace to write documents", flush=True)
        self.engine.stop()
        with self._lock:
            waiting = self._submitted - self._ended
        deadline = time.monotonic() + _STOP_MARGIN
        while waiting and time.monotonic() < deadline:
            time.sleep(0.2)
            with self._lock:
                waiting = self._submitted - self._ended
        for task_id in sorted(waiting):  # the engine said nothing more: the replay's own clock
            self.emit(
                Event(
                    time=time.time(), task_id=task_id, event="KILL", clock="replay",
                    detail="stopped",
                )
            )  # fmt: skip

    # -- signals --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def signals(self) -> Any:
        def on_signal(number: int, _frame: Any) -> None:
            self.signal = self.signal or number
            self.stop.set()

        previous = {
            number: signal.signal(number, on_signal) for number in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)


def _replay_record(
    options: ReplayOptions,
    replay_id: str,
    info: EngineInfo,
    trace: TraceFile,
    images: list[ImageRewrite],
) -> ReplayRecord:
    return ReplayRecord(
        schema_version=REPLAY_SCHEMA_VERSION,
        replay_id=replay_id,
        tool=f"cloudai-workloads {workloads.__version__}",
        command=list(sys.argv),
        trace=TraceSource(
            path=str(options.trace),
            sha256=hashlib.sha256(options.trace.read_bytes()).hexdigest(),
            tasks=len(trace.tasks),
            meta=trace.meta,
        ),
        engine=EngineRecord(
            name=info.name,
            version=info.version,
            api_version=info.api_version,
            options=dict(options.engine_options),
            time_resolution_s=info.time_resolution_s,
        ),
        nodes=info.nodes,
        speed=options.speed,
        grace_seconds=options.grace,
        images=images,
        outcome="running",
    )


def _finish_record(record: ReplayRecord, replayer: Replayer, outcome: str, run: Path) -> None:
    missing = [
        task_id
        for task_id in sorted(replayer.started)
        if not any(task_folder(run, task_id).glob("*.json"))
    ]
    now = time.time()
    record.outcome = outcome  # type: ignore[assignment]
    record.signal = signal.Signals(replayer.signal).name if replayer.signal else None
    record.end_time, record.ended_at = now, timestamp(now)
    record.states = dict(replayer.states)
    record.started_without_document = missing


def _connect(options: ReplayOptions, replay_id: str) -> Engine:
    plugin = plugins.load(options.engine)
    settings = EngineSettings(replay_id, options.grace, dict(options.engine_options))
    return plugin.connect(settings)


def replay(options: ReplayOptions, environment: Mapping[str, str] = os.environ) -> int:
    """Run one replay; ReplayInputError (exit 2) before anything is submitted."""
    try:
        trace_file = load_trace(options.trace)
    except TraceError as err:
        raise ReplayInputError(str(err)) from None
    moved, images = images_to_replay(
        trace_file.tasks, options.registry, options.namespace, environment
    )
    trace = sorted(moved, key=lambda task: task.submit_time)
    _check_output(options.output)
    replay_id = new_id()
    engine = _connect(options, replay_id)
    tasks = _replay_tasks(trace, options.output, replay_id)
    engine.check(tasks)
    _create_output(options.output)
    info = engine.describe()
    for task in tasks:
        task.output.mkdir(parents=True)
    replayed = TraceFile(meta=trace_file.meta, tasks=trace)
    (options.output / TRACE_FILE).write_text(replayed.to_json())
    record = _replay_record(options, replay_id, info, trace_file, images)
    for rewrite in images:
        print(f"replay: {rewrite.trace} runs as {rewrite.replayed} ({rewrite.reason})", flush=True)

    def started(start_time: float) -> None:  # replay.json as soon as the clock runs
        record.start_time, record.started_at = start_time, timestamp(start_time)
        record.write(options.output)

    pairs = list(zip(trace, tasks, strict=True))
    replayer = Replayer(engine, pairs, options.output, options.speed, started, replay_id)
    nodes = info.nodes
    print(
        f"replay {replay_id}: {len(tasks)} tasks from {options.trace} on {info.name} "
        f"{info.version} ({len(nodes)} node(s), {sum(n.cpus for n in nodes):g} CPUs), speed "
        f"{options.speed:g}, into {options.output}",
        flush=True,
    )
    outcome = "failed"
    try:
        with replayer.signals():
            replayer.play()
            outcome = "interrupted" if replayer.signal else "completed"
    except Exception as err:  # the engine failed mid-run: the records are still written
        print(f"replay: error: {engine_error(err)}", file=sys.stderr, flush=True)
    finally:
        with contextlib.suppress(Exception):
            engine.cleanup()
        _finish_record(record, replayer, outcome, options.output)
        record.write(options.output)
        _report(record, options.output)
    if replayer.signal:
        return 128 + replayer.signal
    return EXIT_DONE if outcome == "completed" else EXIT_FAILED


def _report(record: ReplayRecord, run: Path) -> None:
    states = ", ".join(f"{count} {state}" for state, count in sorted(record.states.items()))
    print(f"replay {record.outcome}: {states or 'no task ended'}; records in {run}", flush=True)
    missing = record.started_without_document
    if missing:
        print(
            f"replay: warning: {len(missing)} task(s) started and left no document: "
            f"{', '.join(map(str, missing[:20]))}",
            file=sys.stderr,
            flush=True,
        )
    print(f"next: python -m workloads analyze {run}", flush=True)
