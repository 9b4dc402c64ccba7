"""Collects finished iterations (from any thread) and folds them into run totals."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field

from workloads.runtime.iterations import IterationRecord
from workloads.runtime.latency import Sketch, new_sketch

# The document keeps the first problem sizes only: enough to compare runs, bounded in size.
SIZES_KEPT = 200


@dataclass
class CheckSummary:
    passed: int = 0
    failed: int = 0
    detail: str = ""  # the first failure's detail, else the latest detail

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.passed > 0


@dataclass
class Totals:
    iterations: int
    workers: int
    busy_seconds: float
    work: dict[str, float] = field(default_factory=dict)
    checks: dict[str, CheckSummary] = field(default_factory=dict)
    sizes: list[float] = field(default_factory=list)
    latencies: dict[str, Sketch] = field(default_factory=dict)  # merged over the run
    digest: str = ""

    def rate(self, counter: str, unit: float = 1.0) -> float | None:
        """``counter`` per second of work, summed over workers (load-shape sleeps excluded);
        None when no iteration was done (no work is not a rate of zero)."""
        busy_per_worker = self.busy_seconds / max(self.workers, 1)
        if busy_per_worker <= 0:
            return None
        return self.work.get(counter, 0.0) / unit / busy_per_worker

    def rate_over(self, amount: str, *seconds_counters: str, unit: float = 1.0) -> float | None:
        """``amount`` per second spent in the phases timed by ``seconds_counters``, summed over
        workers: workers ran side by side, so the time is the phases' seconds per worker (None
        when none was spent: the phase did not run). Unlike ``rate``, the rest of each
        iteration is left out."""
        spent = sum(self.work.get(name, 0.0) for name in seconds_counters)
        seconds_per_worker = spent / max(self.workers, 1)
        if seconds_per_worker <= 0:
            return None
        return self.work.get(amount, 0.0) / unit / seconds_per_worker


class Recorder:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: list[IterationRecord] = []
        self._work: dict[str, float] = {}  # running sums, for live rates
        self._latencies: dict[str, Sketch] = {}
        self._busy = 0.0
        self._work_ended: float | None = None
        self.workers = 1

    def add(self, done: IterationRecord) -> None:
        with self._lock:
            self._done.append(done)
            self._busy += done.seconds
            for counter, amount in done.result.work.items():
                self._work[counter] = self._work.get(counter, 0.0) + amount
            # Merged now and dropped from the record: the run keeps one sketch per name.
            for name, sketch in done.result.latencies.items():
                self._latencies.setdefault(name, new_sketch()).merge(sketch)
            done.result.latencies = {}

    def so_far(self) -> Totals:
        """The work counters so far, cheaply (no checks, sizes or digest): for live rates."""
        with self._lock:
            return Totals(len(self._done), self.workers, self._busy, dict(self._work))

    @property
    def count(self) -> int:
        return len(self._done)

    def work_ended(self, at: float) -> None:
        """The workers stopped at ``at`` (time.monotonic()): the idle time the duty cycle owed
        after the last unit belongs to the run's window too."""
        with self._lock:
            self._work_ended = max(at, self._work_ended or at)

    def active_window(self) -> tuple[float, float] | None:
        """(first start, end) of the iterations, in time.monotonic() seconds. The end is the
        moment the workers stopped, or the last unit's end if later: ending at the last unit
        would leave out the pause it owed, and a run of few, long units would read busier than
        its duty cycle (two units at 50 % read as 67 %)."""
        with self._lock:
            if not self._done:
                return None
            last_end = max(done.started + done.seconds for done in self._done)
            return (
                min(done.started for done in self._done),
                max(last_end, self._work_ended or last_end),
            )

    @property
    def next_index(self) -> int:
        with self._lock:
            return max((done.index for done in self._done), default=-1) + 1

    def totals(self) -> Totals:
        with self._lock:
            done = sorted(self._done, key=lambda item: item.index)
            latencies = dict(self._latencies)
        totals = Totals(
            iterations=len(done),
            workers=self.workers,
            busy_seconds=sum(item.seconds for item in done),
            latencies=latencies,
        )
        digest = hashlib.sha256()
        for item in done:
            result = item.result
            digest.update(f"{item.index}:".encode() + result.fingerprint)
            for counter, amount in result.work.items():
                totals.work[counter] = totals.work.get(counter, 0.0) + amount
            for name, check in result.checks.items():
                summary = totals.checks.setdefault(name, CheckSummary())
                if check.passed:
                    summary.passed += 1
                elif not summary.failed:
                    summary.detail = f"iteration {item.index}: {check.detail}".rstrip(": ")
                summary.failed += not check.passed
                if check.passed and not summary.failed:
                    summary.detail = check.detail
            if result.size is not None and len(totals.sizes) < SIZES_KEPT:
                totals.sizes.append(result.size)
        totals.digest = "sha256:" + digest.hexdigest()
        return totals
