"""How a finished run becomes its results document: what the runtime measured (``RunRecord``),
the checks judged once (``verification``), and ``assemble`` into the typed ``RunDocument``."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from workloads.jsonio import timestamp
from workloads.manifest import Workload
from workloads.runtime.context import Reported
from workloads.runtime.document import (
    SCHEMA_VERSION,
    CheckPart,
    DevicePart,
    EnvironmentPart,
    ErrorPart,
    InconclusivePart,
    LimitsPart,
    LoadPart,
    Metric,
    MetricsPart,
    ParamsPart,
    PrimaryMetric,
    ResourcesPart,
    RunDocument,
    Sample,
    ScratchPart,
    Status,
    StopReason,
    TimeseriesPart,
    VerificationPart,
    WorkloadPart,
)
from workloads.runtime.environment import describe_environment
from workloads.runtime.limits import Limits
from workloads.runtime.params import RunParams
from workloads.runtime.record import Totals

_Model = TypeVar("_Model", bound=BaseModel)


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
