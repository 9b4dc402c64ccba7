"""Rates: a work counter per second, the shape of nearly every metric a workload reports, and
``timed``, the one clock of the workloads.

An iteration times its phases with ``with timed(result, "sort"):``, which adds to the
``sort_seconds`` counter (one spelling for every workload); ``Rate("elements", ["sort"],
"elements/s")`` is then elements per second spent sorting, summed over workers, and
``Rate("samples", (), "samples/s")`` samples per second of work. Declared before the run
(``ctx.run_iterations(fn, rates=...)``), the same definitions give the live value and the
document's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import TracebackType
from typing import NamedTuple

from workloads.runtime.iterations import IterationResult
from workloads.runtime.record import Totals


def seconds_counter(operation: str) -> str:
    """The counter of seconds spent in ``operation``: ``<operation>_seconds``."""
    return f"{operation}_seconds"


class timed:  # a context manager, lower case as contextlib's are
    """The seconds spent in ``with`` blocks: every workload times its work with this.

    ``with timed(result, "sort"):`` adds the block's seconds to the result's ``sort_seconds``
    counter, also when the block raises; with ``latency="sort"`` the block is besides one
    sample, in µs, of the run's ``sort_latency_p50`` ... metrics (``ctx.report_latencies``).
    Without a result it is a stopwatch for code that keeps its own figures: ``seconds`` sums
    the blocks it timed, ``last`` is the latest one. One instance may time many blocks.
    """

    __slots__ = ("_counter", "_latency", "_result", "_started", "last", "seconds")

    def __init__(
        self,
        result: IterationResult | None = None,
        operation: str = "",
        *,
        latency: str | None = None,
    ) -> None:
        if result is not None and not operation:
            raise ValueError("timed(result, operation): name the operation timed")
        self._result, self._counter, self._latency = result, seconds_counter(operation), latency
        self._started = 0.0
        self.seconds = self.last = 0.0

    def __enter__(self) -> timed:
        self._started = time.perf_counter()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.last = time.perf_counter() - self._started
        self.seconds += self.last
        if self._result is not None:
            self._result.add(self._counter, self.last)
            if self._latency:
                self._result.record_latency(self._latency, self.last * 1e6)


class Rate(NamedTuple):
    """``counter`` / ``scale`` per second spent in ``operations`` (their ``_seconds``
    counters), or per second of work when there are none."""

    counter: str
    operations: Sequence[str]
    unit: str
    scale: float = 1.0

    def value(self, totals: Totals) -> float | None:
        """None when no time was spent: nothing was measured, which is not a rate of 0."""
        if not self.operations:
            return totals.rate(self.counter, self.scale)
        seconds = [seconds_counter(operation) for operation in self.operations]
        return totals.rate_over(self.counter, *seconds, unit=self.scale)


def per_operation_rates(
    totals: Totals, counter: str, operations: Sequence[str], unit: str
) -> dict[str, Rate]:
    """For each operation that ran, ``<operation>_<counter>_per_s``: its own
    ``<counter>_<operation>`` counter per second spent in it."""
    return {
        f"{operation}_{counter}_per_s": Rate(f"{counter}_{operation}", [operation], unit)
        for operation in operations
        if f"{counter}_{operation}" in totals.work
    }
