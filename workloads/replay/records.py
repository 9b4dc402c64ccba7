"""The run folder a replay writes and ``analyze`` reads: the interface between the two.

    DIR/replay.json       what was replayed, how, on what (schema_version 1)
    DIR/trace.json        the trace as replayed (``trace``'s JSON, images as submitted)
    DIR/events.jsonl      one state change per line, in the vocabulary of Google's cluster trace
    DIR/tasks/<task_id>/  the task's /output: its results document(s)

An event line is ``{"time", "t", "task_id", "event", ...}``: ``time`` is the engine's own
timestamp of the state change (Unix seconds), ``t`` the same as seconds since the replay
started (``replay.json``'s ``start_time``). SUBMIT also carries ``planned`` and ``submitted``,
the planned and the actual offset of the submission on the replay's clock; SCHEDULE the
``node``; FAIL the ``exit_code``; QUEUE the engine's reason for keeping the task waiting.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPLAY_SCHEMA_VERSION = 1
EVENTS = ("SUBMIT", "QUEUE", "SCHEDULE", "START", "FINISH", "FAIL", "KILL", "EVICT", "LOST")
# A task's last state: it ended, and how.
TERMINAL = ("FINISH", "FAIL", "KILL", "EVICT", "LOST")
REPLAY_FILE, TRACE_FILE, EVENTS_FILE, TASKS_FOLDER = (
    "replay.json",
    "trace.json",
    "events.jsonl",
    "tasks",
)


class RunFolderError(Exception):
    """A run folder that is missing a record, or holds a malformed one."""


@dataclass
class Event:
    time: float  # the engine's timestamp, Unix seconds
    task_id: int
    event: str
    extra: dict[str, Any] = field(default_factory=dict)  # node, exit_code, planned, detail...

    def line(self, start_time: float) -> str:
        record = {
            "time": round(self.time, 6),
            "t": round(self.time - start_time, 6),
            "task_id": self.task_id,
            "event": self.event,
            **self.extra,
        }
        return json.dumps(record) + "\n"


def task_folder(run: Path, task_id: int) -> Path:
    return run / TASKS_FOLDER / str(task_id)


class EventLog:
    """Appends events to DIR/events.jsonl from any thread, one flushed line each, so a replay
    that dies leaves every event it saw."""

    def __init__(self, run: Path, start_time: float) -> None:
        self._file = (run / EVENTS_FILE).open("a", encoding="utf-8")
        self._start_time = start_time
        self._lock = threading.Lock()

    def write(self, event: Event) -> None:
        with self._lock:
            self._file.write(event.line(self._start_time))
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


def write_json(path: Path, data: dict[str, Any]) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(data, indent=2) + "\n")
    partial.replace(path)


# -- reading ----------------------------------------------------------------------------------
def read_replay(run: Path) -> dict[str, Any]:
    return _read_json(run / REPLAY_FILE)


def read_trace(run: Path) -> list[dict[str, Any]]:
    tasks = _read_json(run / TRACE_FILE).get("tasks")
    if not isinstance(tasks, list):
        raise RunFolderError(f"{run / TRACE_FILE}: no list of tasks")
    return tasks


def read_events(run: Path) -> list[dict[str, Any]]:
    """Every event, in file order; a line that is not a whole event names itself."""
    path = run / EVENTS_FILE
    if not path.is_file():
        raise RunFolderError(f"{path} is missing: not a replay's run folder")
    events = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                event = json.loads(line)
                valid = {"time", "task_id", "event"} <= event.keys() and event["event"] in EVENTS
            except (json.JSONDecodeError, AttributeError):
                valid = False
            if not valid:
                raise RunFolderError(f"{path}:{number}: not a whole event (truncated?): {line!r}")
            events.append(event)
    return events


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunFolderError(f"{path} is missing: not a replay's run folder") from None
    except json.JSONDecodeError as err:
        raise RunFolderError(f"{path}: not JSON ({err})") from None
    if not isinstance(data, dict):
        raise RunFolderError(f"{path}: not a JSON object")
    return data
