"""The trace: the typed contract of what ``trace`` writes and ``replay`` reads (part of the run
folder's contract, workloads/runfolder.py, which re-exports it). A trace is ``meta`` (how it was
made) and ``tasks``, a ``TraceTask`` each; ``load_trace`` is the one reader of JSON and CSV
traces, validating values (and the agreement of a command's ``--duration`` with
``duration_seconds``), with one-line ``TraceError``s. Traces written before the optional fields
(``user``, ``queue``, ``gpu_share``, ``source``) still read.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from workloads.jsonio import dumps
from workloads.sizes import GIB


class TraceError(ValueError):
    """A trace that cannot be read (one line)."""


def first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]


# -- the trace ------------------------------------------------------------------------------------
Finite = Annotated[float, Field(allow_inf_nan=False)]
# A command's --duration agrees with duration_seconds within this (its text may be rounded).
DURATION_AGREEMENT_S = 0.05
_DURATION_FLAG = re.compile(r"(?:^|\s)--duration(?:=|\s+)([^\s;&|]+)")


class Origin(BaseModel):
    """Where a task of a converted trace came from: its record in the source log, in the log's
    own units and times (seconds; ``time_scale`` divides them into the trace's)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    format: str = Field(description="the log's format: swf, openb...")
    id: str = Field(description="the job's or pod's id in the log")
    line: int | None = Field(None, description="its line in the file")
    user: str | None = None
    group: str | None = None
    queue: str | None = Field(None, description="queue, partition or QoS class")
    application: str | None = None
    submit: Finite = Field(description="seconds since the log's start")
    wait: Finite | None = Field(None, ge=0, description="start - submit in the log")
    runtime: Finite = Field(ge=0)
    processors: Finite = Field(ge=0, description="CPUs it held")
    memory_gib: Finite | None = Field(None, ge=0)
    gpus: int = Field(0, ge=0)
    gpu_share: Finite | None = Field(None, gt=0, le=1, description="of each GPU")
    status: str | None = None
    time_scale: Finite = Field(gt=0, description="the trace's times are the log's divided by it")

    @property
    def scaled_wait(self) -> float | None:
        """The original wait on the trace's clock."""
        return None if self.wait is None else self.wait / self.time_scale


class TraceTask(BaseModel):
    """One task of a trace: when it arrives, what runs, what it asks for. The columns follow
    public cluster traces (Google's cluster data, Alibaba's batch_task); memory and disk in GiB,
    as the master's API and those traces state them. A ``cpu_request`` below the workload's
    envelope is a request the workload sizes itself to (its command passes ``--workers``, and
    the engines make it a CPU limit)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    submit_time: Finite = Field(ge=0, description="seconds after the trace's start")
    task_id: int = Field(ge=0)
    task_name: str = Field(min_length=1, description="the workload id, e.g. cpu-3")
    category: str
    task_type: str
    image: str = Field(min_length=1)
    command: str = Field(min_length=1, description="run as /bin/sh -c COMMAND in the image")
    cpu_request: Finite = Field(gt=0, description="CPUs (cores, fractional allowed)")
    memory_request_gib: Finite = Field(gt=0)
    disk_request_gib: Finite = Field(ge=0)
    gpu_request: int = Field(ge=0)
    duration_seconds: Finite = Field(gt=0)
    seed: int = Field(ge=0)
    # Optional: what real traces say. Traces written without them still read.
    user: str | None = Field(None, min_length=1, description="who submitted it")
    queue: str | None = Field(None, min_length=1, description="queue or priority class")
    gpu_share: Finite | None = Field(
        None, gt=0, le=1, description="the fraction of each GPU it asked for; information only: "
        "the engines give whole GPUs (gpu_request)",
    )  # fmt: skip
    source: Origin | None = Field(None, description="its record in the log it came from")

    @model_validator(mode="after")
    def _consistent(self) -> TraceTask:
        if self.gpu_share is not None and not self.gpu_request:
            raise ValueError("gpu_share: a GPU share needs a gpu_request of 1 or more")
        flag = _DURATION_FLAG.search(self.command)
        try:
            given = float(flag.group(1)) if flag else None
        except ValueError:
            given = None  # a shell variable: nothing to compare
        if given is not None and abs(given - self.duration_seconds) > max(
            DURATION_AGREEMENT_S, 1e-5 * self.duration_seconds
        ):
            raise ValueError(
                f"command: --duration {flag.group(1)} disagrees with duration_seconds "
                f"{self.duration_seconds:g}"
            )
        return self

    @property
    def memory_bytes(self) -> int:
        return round(self.memory_request_gib * GIB)


# The columns every trace has (CSV writes the optional ones only when a task has them).
TRACE_FIELDS = tuple(name for name, info in TraceTask.model_fields.items() if info.is_required())
OPTIONAL_FIELDS = ("user", "queue", "gpu_share")
SOURCE_COLUMNS = tuple(f"source.{name}" for name in Origin.model_fields)


# -- how the trace was made -------------------------------------------------------------------
class LogWindow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    first: int = Field(ge=0, description="the first record of the log the window spans, from 0")
    count: int | None = Field(None, ge=1, description="records asked for; null: to the end")
    last: int = Field(ge=0, description="the last record it spans")
    tasks: int = Field(ge=0)
    skipped: dict[str, int] = Field(default_factory=dict, description="passed over, by reason")
    running_when_it_opens: int = Field(0, ge=0, description="log's jobs running as it opens")


class LogNode(BaseModel):
    """A node of the source cluster or of the target, and how many there are."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    cpus: Finite
    memory_gib: Finite | None = None
    gpus: int = 0
    nodes: int | None = None
    given_by: str | None = Field(None, alias="from", description="the log, or --source-node")


class LogLoad(BaseModel):
    """Offered load (demand over capacity, over the window's span), of CPUs and of GPUs."""

    model_config = ConfigDict(extra="forbid")
    matched: str = Field(description="cpus or gpus: the resource whose load the conversion kept")
    asked: Finite | None = Field(None, description="--load; null: the source's own")
    source: dict[str, Finite | None] = Field(description="on the source cluster; null: unknown")
    target: dict[str, Finite | None] = Field(description="on the target nodes, at the time scale")


class LogMapping(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: str = Field(description="the --map file, or default")
    by_rule: dict[str, int]
    by_workload: dict[str, int]


class LogSource(BaseModel):
    """A converted trace's ``meta.source``: the log it came from and how it was converted."""

    model_config = ConfigDict(extra="forbid")
    file: str
    sha256: str
    format: str
    records: int = Field(ge=0, description="records in the whole log")
    header: dict[str, str] = Field(default_factory=dict, description="what the log says of itself")
    acknowledge: str | None = Field(None, description="whom the log asks to be acknowledged")
    window: LogWindow
    time_scale: Finite = Field(gt=0, description="the trace's times are the log's divided by it")
    time_scale_from: str = Field(description="--time-scale, --span, --load or the source's load")
    duration_range: tuple[Finite, Finite]
    durations_clamped: dict[str, int] = Field(description="run times raised to min, cut to max")
    span_s: dict[str, Finite] = Field(description="first to last submission: source and trace")
    source_node: LogNode
    target_node: LogNode
    load: LogLoad
    mapping: LogMapping


class TraceMeta(BaseModel):
    """How a trace was made: the generator and its parameters, and for a converted trace its
    ``source``. Keys of a trace made elsewhere are kept as they are."""

    model_config = ConfigDict(extra="allow")
    generator: str | None = Field(None, description="what wrote it, with its version")
    seed: int | None = None
    tasks: int | None = Field(None, description="seeded: how many tasks were asked for")
    mix: dict[str, float] | None = Field(None, description="seeded: weight by workload")
    arrival: str | None = Field(None, description="seeded: the arrival process")
    rate: Finite | None = Field(None, description="seeded: arrivals per second")
    duration_scale: Finite | None = None
    duration_range: tuple[Finite, Finite] | None = None
    controls: dict[str, str] = Field(default_factory=dict, description="controls every task gets")
    source: LogSource | None = Field(None, description="converted: the log and the conversion")

    def to_dict(self) -> dict[str, Any]:
        """What was set, as it was set (a null given stays; an absent key stays absent)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class TraceFile(BaseModel):
    """A trace as ``trace`` writes it in JSON: how it was made, and its tasks."""

    model_config = ConfigDict(extra="forbid", title="cloudai-workloads trace")
    meta: TraceMeta = Field(default_factory=TraceMeta, description="how the trace was made")
    tasks: list[TraceTask]

    @field_validator("tasks")
    @classmethod
    def _unique_and_present(cls, tasks: list[TraceTask]) -> list[TraceTask]:
        if not tasks:
            raise ValueError("the trace has no tasks")
        seen: set[int] = set()
        for task in tasks:
            if task.task_id in seen:
                raise ValueError(f"task id {task.task_id} repeats")
            seen.add(task.task_id)
        return tasks

    def to_json(self) -> str:
        return dumps(self.model_dump(exclude_none=True) | {"meta": self.meta.to_dict()})

    def to_csv(self) -> str:
        """The required columns, then those optional ones that a task has (``source.*`` for
        its origin), so a seeded trace's CSV keeps its columns."""
        rows = []
        for task in self.tasks:
            row = task.model_dump(exclude_none=True, exclude={"source"})
            if task.source is not None:
                origin = task.source.model_dump(exclude_none=True)
                row |= {f"source.{name}": value for name, value in origin.items()}
            rows.append(row)
        present = set().union(*rows)
        columns = [*TRACE_FIELDS, *OPTIONAL_FIELDS, *SOURCE_COLUMNS]
        buffer = io.StringIO()
        writer = csv.DictWriter(
            buffer, fieldnames=[c for c in columns if c in present], lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()


def load_trace(path: Path) -> TraceFile:
    """A trace written by ``trace`` (JSON or CSV), validated; TraceError says in one line what
    is wrong and where."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise TraceError(f"{path}: {getattr(err, 'strerror', None) or err}") from None
    try:
        if text.lstrip().startswith("{"):
            return TraceFile.model_validate_json(text)
        return TraceFile(tasks=_csv_rows(path, text))
    except ValidationError as err:
        problem = first_error(err)
        if problem.startswith("tasks."):
            problem = "task " + problem.removeprefix("tasks.")
        raise TraceError(f"{path}: {problem.replace('Value error, ', '')}") from None


def _csv_rows(path: Path, text: str) -> list[dict[str, Any]]:
    if text.lstrip().startswith("[") or not text.strip():
        raise TraceError(f"{path}: not a trace (neither a JSON object nor CSV with a header)")
    reader = csv.DictReader(io.StringIO(text))
    missing = sorted(set(TRACE_FIELDS) - set(reader.fieldnames or ()))
    if missing:
        raise TraceError(f"{path}: not a trace (CSV without {', '.join(missing)})")
    rows = []
    for row in reader:  # an empty cell is an absent optional value; source.* is the origin
        task: dict[str, Any] = {k: v for k, v in row.items() if v != "" and "." not in k}
        origin = {k[7:]: v for k, v in row.items() if k.startswith("source.") and v != ""}
        rows.append(task | ({"source": origin} if origin else {}))
    return rows
