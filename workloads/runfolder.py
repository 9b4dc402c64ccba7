"""The run folder and the trace: the typed contract between ``trace`` and ``replay``, which write
them, and ``replay``, ``analyze`` and ``report``, which read them. A neutral module: the
commands import it side by side, never one another.

    trace.json / .csv     a trace (``TraceFile``: ``meta`` and ``tasks``, a ``TraceTask`` each;
                          defined in workloads/tracefile.py, re-exported here)
    DIR/replay.json       what was replayed, how, on what (``ReplayRecord``)
    DIR/trace.json        the trace as replayed (images as submitted)
    DIR/events.jsonl      one state change per line (``Event``), in the vocabulary of Google's
                          cluster trace
    DIR/tasks/<task_id>/  the task's /output: its results document, and the container's output
                          (``container.log``) where the engine removes containers

Every record is validated through these models on the way in and out; their JSON Schemas are
generated into workloads/schema/ by generate.py. Every event and the replay record carry the
replay's id, so rows of several runs can be joined. Times are Unix seconds (``time``) and
offsets from the replay's start (``t``); timestamps for people are ``jsonio.timestamp``'s.
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_serializer

from workloads.jsonio import write_json

# The trace's half of the contract, re-exported.
from workloads.tracefile import (  # noqa: F401
    OPTIONAL_FIELDS,
    SOURCE_COLUMNS,
    TRACE_FIELDS,
    Origin,
    TraceError,
    TraceFile,
    TraceMeta,
    TraceTask,
    first_error,
    load_trace,
)

REPLAY_FILE, TRACE_FILE, EVENTS_FILE, TASKS_FOLDER = (
    "replay.json",
    "trace.json",
    "events.jsonl",
    "tasks",
)
CONTAINER_LOG = "container.log"  # a container's stdout and stderr, kept at its removal
REPLAY_SCHEMA_VERSION = 2  # 1: before events and the record carried the replay's id
EventKind = Literal[
    "SUBMIT", "QUEUE", "SCHEDULE", "START", "FINISH", "FAIL", "KILL", "EVICT", "LOST"
]
EVENTS: tuple[str, ...] = EventKind.__args__  # type: ignore[attr-defined]
# A task's last state: it ended, and how.
TERMINAL = ("FINISH", "FAIL", "KILL", "EVICT", "LOST")


class RunFolderError(Exception):
    """A run folder that is missing a record, or holds a malformed one (one line)."""


# -- events ---------------------------------------------------------------------------------------
class Event(BaseModel):
    """One state change of a task, a line of events.jsonl. Engines make them with ``time``,
    ``task_id``, ``event`` and what the kind carries; the replay adds ``replay_id`` and ``t``."""

    model_config = ConfigDict(extra="forbid", title="cloudai-workloads replay event")
    replay_id: str | None = Field(None, description="absent in run folders of schema 1")
    time: float = Field(description="the engine's timestamp of the change, Unix seconds")
    t: float | None = Field(None, description="the same, in seconds since the replay started")
    task_id: int
    event: EventKind
    clock: Literal["engine", "replay"] = Field(
        "engine", description="whose clock ``time`` is: the engine's record, or the replay's"
    )
    observed: float | None = Field(
        None, description="when the replay saw the change (Unix seconds), beside an engine "
        "timestamp coarser than the replay's clock (replay.json: engine.time_resolution_s)",
    )  # fmt: skip
    planned: float | None = Field(None, description="SUBMIT: the planned offset")
    submitted: float | None = Field(None, description="SUBMIT: when the replay made the call")
    node: str | None = Field(None, description="SCHEDULE (and an end): where it runs")
    exit_code: int | None = None
    detail: str | None = Field(None, description="the engine's reason: QUEUE, FAIL, KILL")
    inferred: bool | None = Field(None, description="derived from a later state, not seen")

    def line(self) -> str:
        return json.dumps(self.model_dump(exclude_none=True, exclude_defaults=False)) + "\n"


class EventLog:
    """Appends events to DIR/events.jsonl from any thread, one flushed line each, so a replay
    that dies leaves every event it saw."""

    def __init__(self, run: Path, replay_id: str, start_time: float) -> None:
        self._file = (run / EVENTS_FILE).open("a", encoding="utf-8")
        self.replay_id, self.start_time = replay_id, start_time
        self._lock = threading.Lock()

    def write(self, event: Event) -> Event:
        stamped = event.model_copy(
            update={"replay_id": self.replay_id, "t": round(event.time - self.start_time, 6)}
        )
        with self._lock:
            self._file.write(stamped.line())
            self._file.flush()
        return stamped

    def close(self) -> None:
        with self._lock:
            self._file.close()


# -- the replay record ----------------------------------------------------------------------------
class Node(BaseModel):
    """A node of the engine and its capacity, in the envelope's units (CPUs, memory in bytes;
    replay.json calls the memory ``memory_bytes``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    name: str
    cpus: float
    memory: int = Field(
        ge=0,
        validation_alias=AliasChoices("memory", "memory_bytes"),
        serialization_alias="memory_bytes",
    )
    gpus: int | None = Field(None, description="null: the engine does not say")


class TraceSource(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str
    sha256: str
    tasks: int
    meta: TraceMeta

    @field_serializer("meta")
    def _meta_as_written(self, meta: TraceMeta) -> dict[str, Any]:
        return meta.to_dict()


class EngineRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    version: str
    api_version: str
    options: dict[str, Any] = Field(
        default_factory=dict, description="the engine's own options (partition, sbatch args...)"
    )
    time_resolution_s: float | None = Field(
        None, description="the resolution of the engine's timestamps; null: sub-millisecond"
    )


class ImageRewrite(BaseModel):
    model_config = ConfigDict(extra="forbid")
    trace: str = Field(description="the image the trace names")
    replayed: str = Field(description="the image the replay ran instead")
    reason: str = Field(description="which flag or variable moved it")


# jsonio.timestamp's format; replay.json of schema 1 wrote +00:00 for the Z.
Timestamp = Annotated[
    str, Field(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}(Z|\+00:00)$")
]


class ReplayRecord(BaseModel):
    """replay.json: written when the clock starts (outcome ``running``) and again at the end."""

    model_config = ConfigDict(extra="forbid", title="cloudai-workloads replay record")
    schema_version: Literal[1, 2]
    replay_id: str
    tool: str
    command: list[str]
    trace: TraceSource
    engine: EngineRecord
    nodes: list[Node]
    speed: float
    grace_seconds: float
    images: list[ImageRewrite] = Field(
        default_factory=list, description="images the replay ran in place of the trace's"
    )
    outcome: Literal["running", "completed", "interrupted", "failed"]
    start_time: float | None = None
    started_at: Timestamp | None = None
    end_time: float | None = None
    ended_at: Timestamp | None = None
    signal: str | None = None
    states: dict[str, int] = Field(default_factory=dict)
    started_without_document: list[int] = Field(default_factory=list)

    @property
    def capacity_cpus(self) -> float:
        return float(sum(node.cpus for node in self.nodes))

    def write(self, run: Path) -> None:
        write_json(run / REPLAY_FILE, self.model_dump(mode="json", by_alias=True), replace=True)


# -- reading a run folder -------------------------------------------------------------------------
def task_folder(run: Path, task_id: int) -> Path:
    return run / TASKS_FOLDER / str(task_id)


def read_replay(run: Path) -> ReplayRecord:
    path = run / REPLAY_FILE
    try:
        return ReplayRecord.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise RunFolderError(f"{path} is missing: not a replay's run folder") from None
    except ValidationError as err:
        raise RunFolderError(f"{path}: {first_error(err)}") from None


def read_trace(run: Path) -> list[TraceTask]:
    path = run / TRACE_FILE
    if not path.is_file():
        raise RunFolderError(f"{path} is missing: not a replay's run folder")
    try:
        return load_trace(path).tasks
    except TraceError as err:
        raise RunFolderError(str(err)) from None


def read_events(run: Path) -> list[Event]:
    """Every event, in file order; a line that is not a whole event names itself."""
    path = run / EVENTS_FILE
    if not path.is_file():
        raise RunFolderError(f"{path} is missing: not a replay's run folder")
    events = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                events.append(Event.model_validate_json(line))
            except ValidationError:
                raise RunFolderError(
                    f"{path}:{number}: not a whole event (truncated?): {line!r}"
                ) from None
    return events


def offset(event: Event, start_time: float) -> float:
    """Seconds since the replay started: the line's own ``t``, or from ``time`` (the engine's
    timestamp) where an older line lacks it."""
    return event.t if event.t is not None and math.isfinite(event.t) else event.time - start_time


def schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schemas of the run folder's records, by file name (generate.py writes them)."""
    draft = {"$schema": "https://json-schema.org/draft/2020-12/schema"}
    return {
        "trace.schema.json": draft | TraceFile.model_json_schema(),
        "event.schema.json": draft | Event.model_json_schema(),
        "replay.schema.json": draft | ReplayRecord.model_json_schema(),
    }
