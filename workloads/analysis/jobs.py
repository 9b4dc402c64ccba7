"""One row per task of a replay: what was asked, what the engine did, the times derived from
it, and what the task's own results document saw (Batsim's jobs.csv, joined with our documents).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from workloads.jsonio import parse_timestamp
from workloads.runfolder import (
    TERMINAL,
    Event,
    TraceTask,
    offset,
    read_events,
    read_replay,
    read_trace,
    task_folder,
)
from workloads.runtime.document import RunDocument

# Feitelson et al. (JSSPP 1997): runtimes below tau seconds count as tau in bounded slowdown.
BOUNDED_SLOWDOWN_TAU = 10.0
# A detected CPU or memory limit enforces a request when it is within this fraction of it.
ENFORCEMENT_TOLERANCE = 0.01
# Replay fidelity compares waits of at least this many seconds: below it, a wait is the engine's
# own start latency (Swarm's p50 is 0.4 s, Slurm's clock whole seconds), as good as none.
FIDELITY_WAIT_FLOOR_S = 1.0


@dataclass
class Job:
    # what was asked
    task_id: int
    workload: str
    category: str
    task_type: str
    cpu_request: float
    memory_request_bytes: int
    gpu_request: int
    user: str | None = None  # who asked, and in which queue (traces converted from a log)
    queue: str | None = None
    # what the engine did: seconds since the replay started
    node: str | None = None
    submit_planned: float | None = None
    submit_actual: float | None = None  # when the replay made the call (its own clock)
    submit: float | None = None  # the engine's record of creation
    schedule: float | None = None
    start: float | None = None
    end: float | None = None
    state: str = "NOT_SUBMITTED"  # the last event: FINISH, FAIL, KILL... or QUEUED, RUNNING
    exit_code: int | None = None
    # derived
    wait: float | None = None
    turnaround: float | None = None
    runtime: float | None = None
    stretch: float | None = None
    bounded_slowdown: float | None = None
    # replay fidelity: the task's wait in the log, on the trace's clock (divided by the time
    # scale), and the replayed wait over it (each at least FIDELITY_WAIT_FLOOR_S)
    original_wait: float | None = None
    wait_ratio: float | None = None
    # from the task's results document
    document: str | None = None
    status: str | None = None
    stop_reason: str | None = None
    verification: bool | None = None
    metric_name: str | None = None
    metric_value: float | None = None
    metric_unit: str | None = None
    average_cores: float | None = None
    cpu_seconds: float | None = None
    peak_memory_bytes: int | None = None
    limit_cpu_quota: float | None = None
    limit_cpuset: str | None = None
    limit_memory_bytes: int | None = None
    enforced: bool | None = None
    # the replay's id, as every record of a run folder carries it: rows of runs can be joined
    replay_id: str = ""
    # The document's CPU samples: (seconds since the replay started, cores), not a column.
    cpu_samples: list[tuple[float, float]] = field(
        default_factory=list, repr=False, metadata={"column": False}
    )


COLUMNS = tuple(f.name for f in fields(Job) if f.metadata.get("column", True))


def load_jobs(run: Path) -> list[Job]:
    """Rows for every task of the trace, submitted or not, in task order."""
    events, record = read_events(run), read_replay(run)
    start_time = record.start_time or min((event.time for event in events), default=0.0)
    jobs = {task.task_id: _asked(task, record.replay_id) for task in read_trace(run)}
    for event in sorted(events, key=lambda item: item.time):
        job = jobs.get(event.task_id)
        if job is not None:
            _apply(job, event, offset(event, start_time))
    for job in jobs.values():
        _derive(job)
        _join_document(job, task_folder(run, job.task_id), start_time)
    return [jobs[task_id] for task_id in sorted(jobs)]


def _asked(task: TraceTask, replay_id: str) -> Job:
    return Job(
        replay_id=replay_id,
        task_id=task.task_id,
        workload=task.task_name,
        category=task.category,
        task_type=task.task_type,
        cpu_request=task.cpu_request,
        memory_request_bytes=task.memory_bytes,
        gpu_request=task.gpu_request,
        user=task.user,
        queue=task.queue,
        original_wait=task.source.scaled_wait if task.source else None,
    )


def _apply(job: Job, event: Event, at: float) -> None:
    kind = event.event
    if kind == "SUBMIT":
        job.submit, job.state = at, "QUEUED"
        job.submit_planned, job.submit_actual = event.planned, event.submitted
    elif kind == "SCHEDULE" and job.schedule is None:
        job.schedule, job.node = at, event.node
    elif kind == "START" and job.start is None:
        job.start, job.state = at, "RUNNING"
    elif kind in TERMINAL:
        job.end, job.state = at, kind
        job.exit_code = event.exit_code
        job.node = job.node or event.node


def _derive(job: Job) -> None:
    if job.submit is not None and job.start is not None:
        job.wait = job.start - job.submit
        if job.original_wait is not None:
            floor = FIDELITY_WAIT_FLOOR_S
            job.wait_ratio = max(job.wait, floor) / max(job.original_wait, floor)
    if job.end is None or job.submit is None:
        return
    job.turnaround = job.end - job.submit
    if job.start is None:
        return
    job.runtime = job.end - job.start
    if job.runtime > 0:
        job.stretch = job.turnaround / job.runtime
    job.bounded_slowdown = max(1.0, job.turnaround / max(job.runtime, BOUNDED_SLOWDOWN_TAU))


def read_document(path: Path) -> RunDocument | None:
    """A task's results document, or None when it is unreadable or not a whole document (a
    task killed while writing leaves none: documents are written atomically)."""
    try:
        return RunDocument.model_validate_json(path.read_bytes())
    except (OSError, ValidationError):
        return None


def _join_document(job: Job, folder: Path, start_time: float) -> None:
    paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
    document = read_document(paths[-1]) if paths else None  # one per task: the last if more
    if document is None:
        return
    job.document = str(paths[-1].relative_to(folder.parent.parent))
    job.status, job.stop_reason = document.status, document.stop_reason
    job.verification = document.verification.passed
    primary = document.metrics.primary
    if primary is not None:
        job.metric_name, job.metric_value, job.metric_unit = (
            primary.name,
            primary.value,
            primary.unit,
        )
    resources, limits = document.resources, document.limits
    job.average_cores, job.cpu_seconds = resources.average_cores, resources.cpu_seconds
    job.peak_memory_bytes = resources.peak_memory_bytes
    job.limit_cpu_quota, job.limit_memory_bytes = limits.cpu_quota, limits.memory_limit
    cpuset = limits.cpuset or []
    job.limit_cpuset = ",".join(str(cpu) for cpu in cpuset) or None
    job.enforced = enforced(job, len(cpuset), limits.host_cpus)
    job.cpu_samples = _cpu_samples(document, start_time)


def _cpu_samples(document: RunDocument, start_time: float) -> list[tuple[float, float]]:
    began = parse_timestamp(document.started_at) - start_time
    points = [(began + sample.t, sample.cpu_cores) for sample in document.timeseries.samples]
    # A sample stands for the interval that ends at it: the first one's begins at the start.
    return [(began, points[0][1]), *points] if points else []


def _within(detected: float | None, requested: float) -> bool:
    if not requested:
        return True  # nothing was promised
    return detected is not None and abs(detected - requested) <= ENFORCEMENT_TOLERANCE * requested


def enforced(job: Job, cpuset_size: int, host_cpus: int | None) -> bool:
    """The limits the task found in its cgroup match its requests: a CPU quota, or without one
    its cpuset (Slurm's whole CPUs; a cpuset of the whole host counts only where the task asked
    for the whole host), and a memory limit, each within the tolerance."""
    cpu_limit = job.limit_cpu_quota
    if cpu_limit is None and cpuset_size and (not host_cpus or cpuset_size <= host_cpus):
        cpu_limit = float(cpuset_size)
    return _within(cpu_limit, job.cpu_request) and _within(
        job.limit_memory_bytes, job.memory_request_bytes
    )


def write_jobs_csv(jobs: list[Job], path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for job in jobs:
            writer.writerow(_cell(getattr(job, name)) for name in COLUMNS)
    return path


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else str(round(value, 6))
    return str(value)
