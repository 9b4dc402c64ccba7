"""The results document: one typed definition (pydantic), from which generate.py writes its JSON
Schema (workloads/schema/result.schema.json), and its assembly from a finished run's record.

The runner hands ``assemble`` a ``RunRecord`` (what happened, measured by the runtime) and the
workload's ``Reported`` (what it said through its Context); nothing else goes in.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from workloads.jsonio import TIMESTAMP_PATTERN
from workloads.manifest import Category, Envelope, TaskType
from workloads.runtime.choices import Device, Profile, ProgressMode

SCHEMA_VERSION = 2
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
TIMESTAMP = TIMESTAMP_PATTERN


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
