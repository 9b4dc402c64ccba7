"""Rates: a work counter per second, the shape of nearly every metric a workload reports.

An iteration times its phases with ``timed(result, "sort")``, which adds to the ``sort_seconds``
counter (one spelling for every workload); ``Rate("elements", ["sort"], "elements/s")`` is
then elements per second spent sorting, summed over workers, and ``Rate("samples", (),
"samples/s")`` samples per second of work. Declared before the run (``ctx.run_iterations(fn,
rates=...)``), the same definitions give the live value and the document's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import NamedTuple

from workloads.runtime.iterations import IterationResult
from workloads.runtime.record import Totals


def seconds_counter(operation: str) -> str:
    """The counter of seconds spent in ``operation``: ``<operation>_seconds``."""
    return f"{operation}_seconds"


@contextmanager
def timed(result: IterationResult, operation: str) -> Iterator[None]:
    """Add the seconds spent in the block to the result's ``<operation>_seconds`` counter."""
    started = time.perf_counter()
    try:
        yield
    finally:
        result.add(seconds_counter(operation), time.perf_counter() - started)


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
