"""Helpers the CPU workloads share: timing operations inside a task and per-operation rates.

A task that runs several kinds of operation records ``seconds_<operation>`` for each, so a rate
can be taken over the time spent in one kind alone (summed over workers, as Totals.rate does).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from workloads.runtime.record import Totals
from workloads.runtime.tasks import TaskResult


def seconds_counter(operation: str) -> str:
    return f"seconds_{operation}"


@contextmanager
def timed(result: TaskResult, operation: str) -> Iterator[None]:
    """Add the seconds spent in the block to the result's ``seconds_<operation>`` counter."""
    started = time.perf_counter()
    try:
        yield
    finally:
        result.add(seconds_counter(operation), time.perf_counter() - started)


def operation_rate(
    totals: Totals, counter: str, operations: Iterable[str], unit: float = 1.0
) -> float:
    """``counter`` per second spent in ``operations``, summed over workers (0 when none ran)."""
    seconds = sum(totals.work.get(seconds_counter(name), 0.0) for name in operations)
    if seconds <= 0:
        return 0.0
    return totals.work.get(counter, 0.0) / unit / (seconds / max(totals.workers, 1))
