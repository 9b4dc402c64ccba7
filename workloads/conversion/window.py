"""Which records a converted trace replays (a window of the log), the load they offered their
cluster, and the time scale that gives the target the load asked for.

Offered load over a window: the CPUs (or GPUs) its jobs requested, each from its submission for
its run time, plus the jobs already running when the window opens, integrated over the window's
arrival span [first submit, last submit] and divided by the capacity times that span (requested
CPU-seconds per second over capacity). On the target the same, with the mapped requests and the
scaled, clamped durations: arrivals and run times are divided by the time scale F, then run
times are clamped to the duration range. Dividing both by F alone leaves the load as it was; the
clamp makes it grow with F (a run time cut to MAX covers more of a span compressed F times), so
the default F is the one whose load matches the source's (or ``--load``).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from workloads.sources import SourceJob, SourceLog

# The time scales searched for a load: from 1000 times slower to a million times faster.
SCALE_BOUNDS = (1e-3, 1e6)
_STEPS = 80  # bisection steps on log F: far below a 1e-6 relative error


class WindowError(ValueError):
    """A window with nothing to replay, or past the end of the log (one line)."""


@dataclass
class Window:
    jobs: list[SourceJob]  # the replayable records, by submission (file order among equals)
    first: int  # the first and last record index the window spans
    last: int
    skipped: dict[str, int] = field(default_factory=dict)
    carried: list[SourceJob] = field(default_factory=list)  # running when the window opens

    @property
    def opens(self) -> float:
        return self.jobs[0].submit

    @property
    def span(self) -> float:
        """Seconds from the first to the last submission."""
        return self.jobs[-1].submit - self.jobs[0].submit


def select(log: SourceLog, first: int = 0, count: int | None = None) -> Window:
    """``count`` replayable records from record ``first`` on (all to the end for None); the
    records skipped on the way are counted by reason."""
    records = log.records
    if first >= len(records):
        raise WindowError(
            f"--window {first}:{count or ''} starts past the end of {log.path.name} "
            f"({len(records)} records, numbered from 0)"
        )
    jobs: list[SourceJob] = []
    skipped: Counter[str] = Counter()
    last = first
    for record in records[first:]:
        if count is not None and len(jobs) == count:
            break
        last = record.index
        if record.skip:
            skipped[record.skip] += 1
        else:
            jobs.append(record)
    if not jobs:
        raise WindowError(
            f"the window from record {first} of {log.path.name} is empty: its "
            f"{sum(skipped.values())} record(s) never ran ({_reasons(skipped)})"
        )
    if count is not None and len(jobs) < count:
        raise WindowError(
            f"--window {first}:{count} runs past the end of {log.path.name}: only "
            f"{len(jobs)} replayable record(s) from record {first}"
        )
    jobs.sort(key=lambda job: job.submit)
    window = Window(jobs, first, last, dict(skipped))
    window.carried = _running_at(records[:first], window.opens)
    return window


def _reasons(skipped: Counter[str]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in skipped.most_common()) or "none"


def _running_at(earlier: list[SourceJob], moment: float) -> list[SourceJob]:
    running = []
    for job in earlier:
        if job.skip:
            continue
        start = job.submit + (job.wait or 0.0)
        if start <= moment < start + job.runtime:
            running.append(job)
    return running


def gpu_demand(job: SourceJob) -> float:
    """GPUs a job asked for, a share counting as its fraction."""
    return job.gpus * (job.gpu_share or 1.0)


def source_load(window: Window, capacity: float | None, demand) -> float | None:
    """The window's offered load on its own cluster (``demand(job)``: CPUs or GPUs), or None
    when the cluster's capacity or the window's span is unknown or zero."""
    span = window.span
    if not capacity or span <= 0:
        return None
    opens, closes = window.opens, window.opens + span
    area = sum(demand(job) * min(job.runtime, closes - job.submit) for job in window.jobs)
    for job in window.carried:
        end = job.submit + (job.wait or 0.0) + job.runtime
        area += demand(job) * (min(end, closes) - opens)
    return area / (capacity * span)


@dataclass
class Scaling:
    """The window's times and run times on the target's clock, for any time scale F."""

    submits: np.ndarray  # seconds since the window opened, on the log's clock
    runtimes: np.ndarray
    requests: np.ndarray  # the target's requests of the matched resource
    capacity: float  # the target's capacity of that resource
    low: float  # the duration range: run times are clamped to it after scaling
    high: float

    @property
    def span(self) -> float:
        return float(self.submits[-1]) if self.submits.size else 0.0

    def durations(self, scale: float) -> np.ndarray:
        return np.clip(self.runtimes / scale, self.low, self.high)

    def load(self, scale: float) -> float | None:
        """The offered load on the target at time scale ``scale``."""
        span = self.span
        if span <= 0 or not self.capacity:
            return None
        covered = np.minimum(self.durations(scale) * scale, span - self.submits)
        return float((self.requests * covered).sum() / (self.capacity * span))

    def scale_for(self, load: float) -> tuple[float, float]:
        """The smallest time scale whose load reaches ``load`` (the load is non-decreasing
        in the scale), and the load it gives; out of reach, the scale of the nearest load."""
        low, high = (math.log(bound) for bound in SCALE_BOUNDS)
        reach = self.load(math.exp(high)) or 0.0
        target = min(load, reach * (1 - 1e-9))
        for _ in range(_STEPS):
            middle = (low + high) / 2
            if (self.load(math.exp(middle)) or 0.0) >= target:
                high = middle
            else:
                low = middle
        scale = math.exp(high)
        return scale, self.load(scale) or 0.0
