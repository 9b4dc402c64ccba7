"""Helpers the CPU workloads share: timing operations inside a task and reporting per-operation
rates.

A task that runs several kinds of operation records ``seconds_<operation>`` for each, so a rate
can be taken over the time spent in some kinds alone (Totals.rate_over, summed over workers).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import NamedTuple

from workloads.runtime.context import Context
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


class Rate(NamedTuple):
    """A rate metric: ``counter`` per second spent in ``operations``, over ``scale``."""

    counter: str
    operations: Sequence[str]
    unit: str
    scale: float = 1.0


def report_rates(ctx: Context, totals: Totals, rates: Mapping[str, Rate]) -> None:
    """One metric for each named rate, in order: the first is the primary metric."""
    for index, (name, rate) in enumerate(rates.items()):
        seconds = [seconds_counter(operation) for operation in rate.operations]
        value = totals.rate_over(rate.counter, *seconds, unit=rate.scale)
        ctx.metric(name, value, rate.unit, primary=index == 0)


def report_operation_rates(
    ctx: Context, totals: Totals, primary: str, counter: str, operations: Sequence[str], unit: str
) -> None:
    """The primary metric, ``counter`` per second spent in all ``operations``; then, for each
    operation that ran, ``<operation>_<counter>_per_s`` from its ``<counter>_<operation>``."""
    rates = {primary: Rate(counter, operations, unit)}
    for operation in operations:
        own = f"{counter}_{operation}"
        if own in totals.work:
            rates[f"{operation}_{counter}_per_s"] = Rate(own, [operation], unit)
    report_rates(ctx, totals, rates)
