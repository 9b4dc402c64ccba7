"""Iterations: what a workload's iteration function receives (Iteration) and returns
(IterationResult), and what the runtime records of it (IterationRecord).

An iteration is one unit of a workload's work. Its random numbers come from (seed, index) alone,
so the sequence of problem sizes and the verification digest depend on the seed and not on which
worker ran what.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

from workloads.runtime.latency import Sketch, evenly, new_sketch

T = TypeVar("T")


class Interrupted(Exception):
    """Raised by Iteration.checkpoint() when the run must stop; the unfinished iteration is
    discarded."""


class _StopFlag(Protocol):
    def is_set(self) -> bool: ...


@dataclass
class Iteration:
    index: int  # 0-based iteration number
    seed: int  # the run's seed
    scale: float  # problem-size factor
    memory_budget: int  # bytes this iteration may hold (the run's budget shared among workers)
    worker: int
    workers: int
    stop: _StopFlag = field(repr=False)
    deadline: float = field(repr=False)  # time.monotonic() at which the run ends
    scratch: Path | None = None  # this worker's scratch folder, when the workload asked for one
    disk_budget: int = 0  # bytes of scratch data this iteration may keep on disk at once

    @cached_property
    def rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.index])

    def stopping(self) -> bool:
        return self.stop.is_set() or time.monotonic() >= self.deadline

    def checkpoint(self) -> None:
        """Call between steps of a long iteration: raises Interrupted when the run must stop."""
        if self.stopping():
            raise Interrupted

    def rotate(self, choices: Sequence[T], every: int = 1) -> T:
        """This iteration's choice when iterations take ``choices`` in turn, each for ``every``
        iterations in a row: with ``every`` the length of another rotation, every pair of the
        two meets."""
        return choices[self.index // every % len(choices)]

    @contextmanager
    def folder(self) -> Iterator[Path]:
        """A new folder for this iteration's scratch files, removed with everything in it when
        the block ends, also when it raises (``ctx.run_iterations(fn, scratch=True)``)."""
        if self.scratch is None:
            raise RuntimeError("no scratch folder: run the iterations with scratch=True")
        folder = self.scratch / f"iteration-{self.index}"
        folder.mkdir()
        try:
            yield folder
        finally:
            shutil.rmtree(folder)

    def grow(self, low: float, high: float, period: int = 8) -> float:
        """A size that grows geometrically from ``low`` to ``high`` over ``period`` iterations,
        then starts again, jittered by ±15 % and phase-shifted by the seed."""
        offset = int(np.random.default_rng([self.seed, 0x5EED]).integers(period))
        phase = ((self.index + offset) % period) / max(period - 1, 1)
        jitter = float(np.random.default_rng([self.seed, self.index, 0x51CE]).uniform(0.85, 1.15))
        return min(high, max(low, low * (high / low) ** phase * jitter))


@dataclass
class Check:
    passed: bool
    detail: str = ""


@dataclass
class IterationResult:
    """What one iteration did: work counters, verification checks and a fingerprint."""

    work: dict[str, float] = field(default_factory=dict)  # summed over iterations
    checks: dict[str, Check] = field(default_factory=dict)
    fingerprint: bytes = b""  # deterministic for (seed, index): feeds the run's digest
    size: float | None = None  # the problem size, recorded in the size sequence
    latencies: dict[str, Sketch] = field(default_factory=dict)  # merged into the run's

    def check(self, name: str, passed: bool, detail: str = "") -> bool:
        """Record a verification check (its name says what was checked); returns ``passed``."""
        self.checks[name] = Check(bool(passed), detail)
        return bool(passed)

    def add(self, counter: str, amount: float) -> None:
        self.work[counter] = self.work.get(counter, 0.0) + amount

    def record_latencies(self, name: str, microseconds: Sequence[float]) -> None:
        """Latencies (µs) for the run's ``<name>_latency_p50`` ... metrics; at most
        KEPT_PER_ITERATION of them, evenly spaced, go into the iteration's sketch."""
        sketch = self.latencies.setdefault(name, new_sketch())
        for value in evenly(microseconds):
            sketch.add(float(value))

    def record_latency(self, name: str, microseconds: float) -> None:
        self.latencies.setdefault(name, new_sketch()).add(float(microseconds))

    def fingerprint_with(self, *parts: object) -> None:
        digest = hashlib.sha256(self.fingerprint)
        for part in parts:
            digest.update(part if isinstance(part, bytes) else repr(part).encode())
        self.fingerprint = digest.digest()


@dataclass
class IterationRecord:
    """A finished iteration, as the runtime records it."""

    index: int
    worker: int
    started: float  # time.monotonic() when the iteration began
    seconds: float  # busy time of the iteration
    result: IterationResult


IterationFunction = Callable[[Iteration], IterationResult]
