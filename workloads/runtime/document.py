"""The results document: one typed definition (pydantic), from which generate.py writes its JSON
Schema (workloads/schema/result.schema.json), and its assembly from a finished run's record.

The runner hands ``assemble`` a ``RunRecord`` (what happened, measured by the runtime) and the
workload's ``Reported`` (what it said through its Context); nothing else goes in.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from workloads.manifest import Category, Envelope, TaskType, Workload
from workloads.runtime.choices import Device, Profile, ProgressMode
from workloads.runtime.context import Reported
from workloads.runtime.environment import describe_environment
from workloads.runtime.limits import Limits
from workloads.runtime.params import RunParams
from workloads.runtime.record import Totals

SCHEMA_VERSION = 2
_Model = TypeVar("_Model", bound=BaseModel)
Status = Literal["completed", "terminated", "failed"]
StopReason = Literal[
    "duration",
    "iterations",
    "signal",
    "error",
    "verification",
    "out-of-memory",
    "disk-full",
    "insufficient-memory",
]
Timestamp = str  # UTC, milliseconds: 2026-12-01T22:16:25.123Z
TIMESTAMP = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$"


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkloadPart(_Part):
    id: str
    category: Category
    number: int = Field(ge=1)
    title: str
    module: str
    task_type: TaskType
    envelope: Envelope


class ParamsPart(_Part):
    """Every resolved control, and the effective budgets."""

    duration: float
    iterations: int | None = Field(ge=0)
    scale: float
    seed: int = Field(ge=0)
    workers: int = Field(ge=1)
    memory: int | None
    memory_budget: int = Field(ge=0)
    profile: Profile
    intensity: float
    device: Device
    results_dir: str
    work_dir: str | None
    disk: int | None
    disk_budget: int | None = Field(ge=0)
    sample_interval: float
    progress: ProgressMode
    metrics_port: int | None = Field(ge=1, le=65535)
    metrics_textfile: str | None
    sources: dict[str, str] = Field(description="where each control came from: flag, env...")


class ErrorPart(_Part):
    type: str
    message: str
    traceback: str


class LimitsPart(_Part):
    """What the run found in its cgroup (v1 or v2) and on the host."""

    cgroup_version: Literal[1, 2] | None
    cpu_quota: float | None
    cpuset: list[int] | None
    affinity: list[int]
    host_cpus: int
    memory_limit: int | None
    host_memory: int = Field(ge=0)
    memory_available: int = Field(ge=0)
    usable_cpus: float
    memory_ceiling: int = Field(ge=0)


class ResourcesPart(_Part):
    """The whole process tree, as the kernel counts it."""

    cpu_seconds: float
    average_cores: float
    peak_memory_bytes: int = Field(ge=0)
    read_bytes: int = Field(ge=0)
    write_bytes: int = Field(ge=0)
    gpu_memory_peak_bytes: float | None


class Metric(_Part):
    value: float | None = Field(description="null: nothing was measured")
    unit: str = Field(min_length=1)


class PrimaryMetric(Metric):
    name: str


class MetricsPart(_Part):
    primary: PrimaryMetric | None = Field(description="the one the manifest declares")
    secondary: dict[str, Metric]
    iterations: int = Field(ge=0)
    work: dict[str, float] = Field(description="work counters, summed over iterations")
    problem_sizes: list[float] = Field(description="the first problem sizes, in order")


class LoadPart(_Part):
    profile: Profile
    intensity_pct: float
    target_mean_pct: float
    achieved_busy_pct: float | None = Field(ge=0, description="null when no iteration ran")
    achieved_cpu_pct: float
    workers: int


class CheckPart(_Part):
    name: str
    passed: bool
    count: int = Field(ge=0)
    detail: str


class InconclusivePart(_Part):
    name: str
    reason: str


class VerificationPart(_Part):
    passed: bool | None = Field(
        description="the checks that could judge all passed; null when none could (no "
        "iteration, or every check lacked the progress it needs)"
    )
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    iterations: int = Field(ge=0)
    checks: list[CheckPart]
    inconclusive: list[InconclusivePart] = Field(
        description="checks that need progress to judge (a falling loss) and got too little"
    )


class ScratchPart(_Part):
    """Where scratch data lived (removed by the end of the run)."""

    path: str
    filesystem: str | None
    mount_point: str | None
    disk_budget: int | None = Field(ge=0)


class DevicePart(_Part):
    requested: Device
    used: str
    name: str | None = None
    fallback: str | None


class EnvironmentPart(_Part):
    python: str
    implementation: str
    libraries: dict[str, str]
    cpu_model: str
    machine: str
    kernel: str
    os: str
    hostname: str
    container: bool
    lock: str | None = Field(
        description="sha256 of the dependency lock the image was built from; null outside one"
    )
    device: DevicePart


class Sample(_Part):
    t: float = Field(description="seconds since the run started")
    cpu_cores: float
    rss_bytes: float
    read_bytes_per_s: float
    write_bytes_per_s: float
    iterations_per_s: float
    target_intensity_pct: float
    gpu_util_pct: float | None
    gpu_memory_bytes: float | None
    gpu_power_w: float | None


class TimeseriesPart(_Part):
    interval_seconds: float
    samples: list[Sample]


class RunDocument(_Part):
    """One run of one workload. Keys are stable within a schema_version; new optional keys may
    appear."""

    model_config = ConfigDict(
        extra="forbid",
        title="cloudai-workloads run document",
        json_schema_extra={"$id": f"urn:cloudai-workloads:result:{SCHEMA_VERSION}"},
    )
    schema_version: Literal[2]
    run_id: str
    workload: WorkloadPart
    params: ParamsPart
    seed: int = Field(ge=0)
    status: Status
    stop_reason: StopReason
    signal: str | None
    error: ErrorPart | None
    started_at: Timestamp = Field(pattern=TIMESTAMP)
    ended_at: Timestamp = Field(pattern=TIMESTAMP)
    wall_seconds: float
    command: list[str]
    limits: LimitsPart
    resources: ResourcesPart
    metrics: MetricsPart
    load: LoadPart
    verification: VerificationPart
    details: dict[str, Any] = Field(description="workload-specific facts")
    scratch: ScratchPart | None
    environment: EnvironmentPart
    timeseries: TimeseriesPart

    def primary_metric_text(self) -> str:
        """The primary metric as '12.3 MB/s', or 'no metric' when none was measured."""
        primary = self.metrics.primary
        if primary is None or primary.value is None:
            return "no metric"
        return f"{primary.value:.4g} {primary.unit}"

    def verification_text(self) -> str:
        """'passed', 'failed' or 'nothing to judge', and how many checks were inconclusive."""
        passed = self.verification.passed
        verdict = {True: "passed", False: "failed", None: "nothing to judge"}[passed]
        inconclusive = len(self.verification.inconclusive)
        return verdict + (f" ({inconclusive} inconclusive)" if inconclusive else "")

    @property
    def peak_cores(self) -> float:
        """The most cores a sample saw (the average when there is no sample)."""
        cores = [sample.cpu_cores for sample in self.timeseries.samples]
        return max(cores, default=self.resources.average_cores)


def schema() -> dict[str, Any]:
    """The document's JSON Schema (draft 2020-12), as generate.py writes it."""
    generated = RunDocument.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **generated}


# -- assembly -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    status: Status
    stop_reason: StopReason
    error: ErrorPart | None = None


@dataclass(frozen=True)
class RunRecord:
    """What the runtime measured of a finished run."""

    workload: Workload
    params: RunParams
    limits: Limits
    run_id: str
    started_at: datetime
    ended_at: datetime
    outcome: Outcome
    signal: str | None
    totals: Totals
    verification: VerificationPart  # the checks, as the outcome judged them
    tree: dict[str, float]  # process_tree_totals: cpu_seconds, max_rss_bytes, read/write bytes
    peak_rss_bytes: int
    peak_gpu_memory_bytes: float | None
    samples: list[dict[str, float | None]]
    memory_budget: int
    scratch: dict[str, Any] | None
    load: LoadPart
    lock: str | None


def verification(totals: Totals, reported: Reported) -> VerificationPart:
    checks = [
        CheckPart(
            name=name,
            passed=summary.ok,
            count=summary.passed + summary.failed,
            detail=summary.detail,
        )
        for name, summary in totals.checks.items()
    ]
    checks += [
        CheckPart(name=name, passed=check.passed, count=1, detail=check.detail)
        for name, check in reported.checks.items()
    ]
    inconclusive = [
        InconclusivePart(name=name, reason=reason) for name, reason in reported.inconclusive.items()
    ]
    return VerificationPart(
        passed=verdict(checks, inconclusive, totals.iterations),
        digest=totals.digest,
        iterations=totals.iterations,
        checks=checks,
        inconclusive=inconclusive,
    )


def verdict(
    checks: list[CheckPart], inconclusive: list[InconclusivePart], iterations: int
) -> bool | None:
    """The checks that could judge all passed (True) or not (False); None when none could:
    no iteration ran, or every check lacked the progress it needs. Work done with no check at
    all is a workload that verifies nothing: False."""
    if checks:
        return all(check.passed for check in checks)
    return None if iterations == 0 or inconclusive else False


def timestamp(moment: datetime) -> Timestamp:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def assemble(record: RunRecord, reported: Reported, *, validate: bool = True) -> RunDocument:
    """The document of a run. Validated as it is built; ``validate=False`` builds it as it is,
    so that a document the schema would refuse (a bug) is still written rather than lost."""

    def make(part: type[_Model], **fields: Any) -> _Model:
        return part(**fields) if validate else part.model_construct(**fields)

    workload, params, totals, tree = record.workload, record.params, record.totals, record.tree
    wall = max((record.ended_at - record.started_at).total_seconds(), 1e-9)
    primary_name = workload.primary_metric.name
    metrics = {
        name: make(Metric, value=m.value, unit=m.unit) for name, m in reported.metrics.items()
    }
    primary = metrics.pop(primary_name, None)
    scratch = record.scratch
    return make(
        RunDocument,
        schema_version=SCHEMA_VERSION,
        run_id=record.run_id,
        workload=make(
            WorkloadPart,
            id=workload.id,
            category=workload.category,
            number=workload.number,
            title=workload.title,
            module=workload.module,
            task_type=workload.task_type,
            envelope=workload.envelope,
        ),
        params=make(
            ParamsPart,
            **params.to_dict(),
            memory_budget=record.memory_budget,
            disk_budget=scratch["disk_budget"] if scratch else None,
        ),
        seed=params.seed,
        status=record.outcome.status,
        stop_reason=record.outcome.stop_reason,
        signal=record.signal,
        error=record.outcome.error,
        started_at=timestamp(record.started_at),
        ended_at=timestamp(record.ended_at),
        wall_seconds=round(wall, 3),
        command=list(sys.argv),
        limits=make(LimitsPart, **record.limits.to_dict()),
        resources=make(
            ResourcesPart,
            cpu_seconds=round(tree["cpu_seconds"], 3),
            average_cores=round(tree["cpu_seconds"] / wall, 3),
            peak_memory_bytes=max(record.peak_rss_bytes, int(tree["max_rss_bytes"])),
            read_bytes=int(tree["read_bytes"]),
            write_bytes=int(tree["write_bytes"]),
            gpu_memory_peak_bytes=reported.gpu_memory_peak_bytes or record.peak_gpu_memory_bytes,
        ),
        metrics=make(
            MetricsPart,
            primary=make(PrimaryMetric, name=primary_name, **primary.model_dump())
            if primary
            else None,
            secondary=metrics,
            iterations=totals.iterations,
            work={name: round(value, 6) for name, value in totals.work.items()},
            problem_sizes=totals.sizes,
        ),
        load=record.load,
        verification=record.verification,
        details=reported.details,
        scratch=make(ScratchPart, **scratch) if scratch else None,
        environment=make(
            EnvironmentPart,
            **describe_environment(),
            lock=record.lock,
            device=make(DevicePart, **reported.device),
        ),
        timeseries=make(
            TimeseriesPart,
            interval_seconds=params.sample_interval,
            samples=[make(Sample, **sample) for sample in record.samples],
        ),
    )
