"""The schedule summary of a replay (Batsim's schedule.json, with what the workloads saw), its
figures by flat name for thresholds (Kueue's rangespec) and for comparing two runs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from workloads.analysis.jobs import (
    BOUNDED_SLOWDOWN_TAU,
    ENFORCEMENT_TOLERANCE,
    FIDELITY_WAIT_FLOOR_S,
    Job,
)
from workloads.yamlio import YamlError, load_yaml

SUMMARY_SCHEMA_VERSION = 2  # 1: before users and replay fidelity
PERCENTILES = (50, 90, 99)
FIDELITY_FIGURES = ("fidelity_tasks", "fidelity_wait_ratio_p50", "fidelity_rank_correlation")


class Distribution(BaseModel):
    """Over the tasks that have the value; percentiles interpolate linearly between ranks
    (numpy's default). All null when no task has it."""

    model_config = ConfigDict(extra="forbid")
    count: int
    mean: float | None
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None


class Times(BaseModel):
    model_config = ConfigDict(extra="forbid")
    wait_s: Distribution
    turnaround_s: Distribution
    bounded_slowdown: Distribution


class Utilisation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    capacity_cpus: float = Field(description="the nodes' CPUs, summed")
    span_s: float | None = Field(description="the makespan, over which utilisation is taken")
    requested: float | None = Field(
        description="CPU requested by the tasks x their runtime, over capacity x span"
    )
    measured: float | None = Field(
        description="CPU seconds the tasks' documents measured, over capacity x span"
    )


class Fidelity(BaseModel):
    """How production-like the replay was: each task's replayed wait against its wait in the
    log divided by the time scale (the original on the trace's clock), both at least
    ``wait_floor_s``, over the tasks that have both."""

    model_config = ConfigDict(extra="forbid")
    tasks: int
    wait_floor_s: float = FIDELITY_WAIT_FLOOR_S
    original_wait_s: Distribution = Field(description="the log's waits / the time scale")
    replayed_wait_s: Distribution
    wait_ratio: Distribution = Field(description="replayed over original; 1: as in the log")
    median_wait_ratio: float | None
    rank_correlation: float | None = Field(
        description="Spearman's rho of replayed and original waits (ties share their mean "
        "rank); null when either side has one value only"
    )


class Summary(BaseModel):
    """summary.json: what the scheduler did with a replay, in figures."""

    model_config = ConfigDict(extra="forbid")
    schema_version: int = SUMMARY_SCHEMA_VERSION
    replay_id: str | None = Field(None, description="the replay analyzed (replay.json's)")
    tasks: int
    states: dict[str, int] = Field(description="tasks by final state (FINISH, FAIL, KILL...)")
    success_rate: float = Field(description="tasks that ended FINISH (exit 0), over all tasks")
    documents: int = Field(description="tasks that left a results document")
    tasks_without_document: list[int]
    makespan_s: float | None = Field(description="last end minus first submit")
    overall: Times
    by_category: dict[str, Times]
    utilisation: Utilisation
    fairness_jain: float | None = Field(
        description="Jain's index over the categories' mean bounded slowdown, in [1/n, 1]"
    )
    by_user: dict[str, Times] = Field(
        default_factory=dict, description="per user, for tasks that say who submitted them"
    )
    fairness_jain_users: float | None = Field(
        None, description="Jain's index over the users' mean bounded slowdown"
    )
    fidelity: Fidelity | None = Field(
        None, description="replayed against original waits, for tasks from a log that has them"
    )
    submit_lag_s: Distribution = Field(description="actual minus planned submission offset")
    enforcement_violations: int = Field(
        description="tasks whose detected CPU or memory limit misses the request"
    )
    bounded_slowdown_tau_s: float = BOUNDED_SLOWDOWN_TAU
    enforcement_tolerance: float = ENFORCEMENT_TOLERANCE


def distribution(values: Iterable[float | None]) -> Distribution:
    present = np.array([value for value in values if value is not None], dtype=float)
    if not present.size:
        return Distribution(count=0, mean=None, p50=None, p90=None, p99=None, max=None)
    p50, p90, p99 = (float(value) for value in np.percentile(present, PERCENTILES))
    return Distribution(
        count=int(present.size),
        mean=float(present.mean()),
        p50=p50,
        p90=p90,
        p99=p99,
        max=float(present.max()),
    )


def _times(jobs: list[Job]) -> Times:
    return Times(
        wait_s=distribution(job.wait for job in jobs),
        turnaround_s=distribution(job.turnaround for job in jobs),
        bounded_slowdown=distribution(job.bounded_slowdown for job in jobs),
    )


def jain(values: list[float]) -> float | None:
    """Jain, Chiu and Hawe (1984): (sum x)^2 / (n sum x^2)."""
    squares = sum(value * value for value in values)
    return sum(values) ** 2 / (len(values) * squares) if values and squares else None


def _fairness(groups: dict[str, Times]) -> float | None:
    means = [times.bounded_slowdown.mean for times in groups.values()]
    return jain([mean for mean in means if mean is not None])


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their mean rank."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(values.size)
    ranks[order] = np.arange(1, values.size + 1)
    unique, inverse = np.unique(values, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks, minlength=unique.size)
    return (sums / np.bincount(inverse, minlength=unique.size))[inverse]


def spearman(first: list[float], second: list[float]) -> float | None:
    """Spearman's rank correlation; None with fewer than two pairs or a constant side."""
    if len(first) < 2:
        return None
    a, b = _ranks(np.array(first, dtype=float)), _ranks(np.array(second, dtype=float))
    a, b = a - a.mean(), b - b.mean()
    scale = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / scale) if scale > 0 else None


def fidelity(jobs: list[Job]) -> Fidelity | None:
    pairs = [(job.wait, job.original_wait) for job in jobs if job.wait_ratio is not None]
    if not pairs:
        return None
    floor = FIDELITY_WAIT_FLOOR_S
    replayed = [max(wait, floor) for wait, _ in pairs]
    original = [max(wait, floor) for _, wait in pairs]
    ratios = distribution(job.wait_ratio for job in jobs)
    return Fidelity(
        tasks=len(pairs),
        original_wait_s=distribution(original for _, original in pairs),
        replayed_wait_s=distribution(wait for wait, _ in pairs),
        wait_ratio=ratios,
        median_wait_ratio=ratios.p50,
        rank_correlation=spearman(replayed, original),
    )


def summarize(jobs: list[Job], capacity_cpus: float, replay_id: str | None = None) -> Summary:
    submits = [job.submit for job in jobs if job.submit is not None]
    ends = [job.end for job in jobs if job.end is not None]
    span = max(ends) - min(submits) if submits and ends else None
    categories = sorted({job.category for job in jobs})
    by_category = {c: _times([job for job in jobs if job.category == c]) for c in categories}
    users = sorted({job.user for job in jobs if job.user is not None})
    by_user = {u: _times([job for job in jobs if job.user == u]) for u in users}
    return Summary(
        replay_id=replay_id,
        tasks=len(jobs),
        states=dict(Counter(job.state for job in jobs)),
        success_rate=sum(job.state == "FINISH" for job in jobs) / len(jobs) if jobs else 0.0,
        documents=sum(job.document is not None for job in jobs),
        tasks_without_document=[job.task_id for job in jobs if job.document is None],
        makespan_s=span,
        overall=_times(jobs),
        by_category=by_category,
        utilisation=_utilisation(jobs, capacity_cpus, span),
        fairness_jain=_fairness(by_category),
        by_user=by_user,
        fairness_jain_users=_fairness(by_user),
        fidelity=fidelity(jobs),
        submit_lag_s=distribution(
            job.submit_actual - job.submit_planned
            for job in jobs
            if job.submit_actual is not None and job.submit_planned is not None
        ),
        enforcement_violations=sum(job.enforced is False for job in jobs),
    )


def _utilisation(jobs: list[Job], capacity: float, span: float | None) -> Utilisation:
    area = capacity * span if span else 0.0
    requested = sum(job.cpu_request * job.runtime for job in jobs if job.runtime is not None)
    measured = sum(job.cpu_seconds for job in jobs if job.cpu_seconds is not None)
    return Utilisation(
        capacity_cpus=capacity,
        span_s=span,
        requested=requested / area if area else None,
        measured=measured / area if area else None,
    )


# -- figures by flat name: thresholds and comparisons -------------------------------------------
def _flat_times(prefix: str, times: Times) -> dict[str, float | None]:
    figures: dict[str, float | None] = {}
    for name, unit in (("wait", "_s"), ("turnaround", "_s"), ("bounded_slowdown", "")):
        spread = getattr(times, name + unit)
        for stat in ("mean", "p50", "p90", "p99", "max"):
            figures[f"{prefix}{name}_{stat}{unit}"] = getattr(spread, stat)
    return figures


def figures(summary: Summary) -> dict[str, float | None]:
    """Every summary figure by one flat name: wait_p99_s, success_rate, cpu.wait_p99_s..."""
    flat: dict[str, float | None] = {
        "tasks": summary.tasks,
        "success_rate": summary.success_rate,
        "documents": summary.documents,
        "tasks_without_document": len(summary.tasks_without_document),
        "makespan_s": summary.makespan_s,
        "utilisation_requested": summary.utilisation.requested,
        "utilisation_measured": summary.utilisation.measured,
        "fairness_jain": summary.fairness_jain,
        "fairness_jain_users": summary.fairness_jain_users,
        "enforcement_violations": summary.enforcement_violations,
    }
    if summary.fidelity is not None:
        flat["fidelity_tasks"] = summary.fidelity.tasks
        flat["fidelity_wait_ratio_p50"] = summary.fidelity.median_wait_ratio
        flat["fidelity_rank_correlation"] = summary.fidelity.rank_correlation
    flat |= _flat_times("", summary.overall)
    for stat in ("mean", "p50", "p90", "p99", "max"):
        flat[f"submit_lag_{stat}_s"] = getattr(summary.submit_lag_s, stat)
    for state, count in sorted(summary.states.items()):
        flat[f"state.{state}"] = count
    for category, times in summary.by_category.items():
        flat |= _flat_times(f"{category}.", times)
    for user, times in summary.by_user.items():
        flat |= _flat_times(f"user.{user}.", times)
    return flat


class ThresholdError(ValueError):
    """A thresholds file that is not a mapping of known figures to {min, max}."""


def load_thresholds(path: Path, known: dict[str, Any]) -> dict[str, dict[str, float]]:
    """``wait_p99_s: {max: 30}``-style bounds; a figure this summary does not have is an error
    (a per-category or per-user figure counts as known when its category or user is absent
    from this run, as do the fidelity figures of a run without original waits)."""
    try:
        data = load_yaml(path)
    except YamlError as err:
        raise ThresholdError(str(err)) from None
    if not isinstance(data, dict):
        raise ThresholdError(f"{path}: not a mapping of figures to {{min, max}}")
    overall = {name for name in known if "." not in name} | set(FIDELITY_FIGURES)
    for name, bounds in data.items():
        parts = str(name).split(".")
        base = parts[-1] if parts[0] != "user" or len(parts) == 3 else ""
        if name not in known and base not in overall:
            raise ThresholdError(f"{path}: unknown figure {name!r}")
        if not isinstance(bounds, dict) or not bounds or set(bounds) - {"min", "max"}:
            raise ThresholdError(f"{path}: {name}: give min and/or max, e.g. {{max: 30}}")
        if not all(isinstance(v, int | float) for v in bounds.values()):
            raise ThresholdError(f"{path}: {name}: bounds must be numbers")
    return data


def violations(flat: dict[str, float | None], thresholds: dict[str, dict[str, float]]) -> list[str]:
    """One line per figure outside its bounds (a figure the run could not measure violates)."""
    lines = []
    for name, bounds in thresholds.items():
        value = flat.get(name)
        for side, limit in bounds.items():
            if value is None:
                lines.append(f"{name}: not measured in this run ({side} {limit:g})")
            elif (side == "max" and value > limit) or (side == "min" and value < limit):
                lines.append(f"{name} = {value:.6g}, {side} {limit:g}")
    return lines


def comparison(current: dict[str, float | None], baseline: dict[str, float | None]) -> list[str]:
    """Each figure of the two runs side by side, with the change."""
    width = max(map(len, current | baseline), default=10)
    lines = [f"{'figure':<{width}}  {'baseline':>12}  {'this run':>12}  {'change':>16}"]
    for name in sorted(current | baseline):
        old, new = baseline.get(name), current.get(name)
        lines.append(
            f"{name:<{width}}  {_number(old):>12}  {_number(new):>12}  {_change(old, new):>16}"
        )
    return lines


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _change(old: float | None, new: float | None) -> str:
    if old is None or new is None:
        return "-"
    delta = new - old
    relative = f" ({100 * delta / old:+.1f}%)" if old else ""
    return f"{delta:+.4g}{relative}"
