"""The helpers a workload's module is written with: timing, scratch folders, rotation."""

from __future__ import annotations

import time

import pytest

from workloads.runtime.iterations import IterationResult
from workloads.runtime.rates import timed

pytestmark = pytest.mark.unit


def test_timed_adds_the_block_to_the_operation_seconds_counter() -> None:
    result = IterationResult()
    for _ in range(2):
        with timed(result, "sort"):
            time.sleep(0.01)
    assert list(result.work) == ["sort_seconds"]
    assert result.work["sort_seconds"] >= 0.02
    assert not result.latencies  # no latency asked for


def test_timed_counts_a_block_that_raises() -> None:
    result = IterationResult()
    with pytest.raises(ZeroDivisionError), timed(result, "divide"):
        _ = 1 / 0
    assert result.work["divide_seconds"] >= 0


def test_timed_with_a_latency_records_each_block_in_microseconds() -> None:
    result = IterationResult()
    for _ in range(3):
        with timed(result, "query", latency="point_query"):
            time.sleep(0.002)
    sketch = result.latencies["point_query"]
    assert sketch.count == 3
    assert sketch.get_quantile_value(0.5) >= 2000 * 0.99  # µs, within the sketch's 1 %
    assert result.work["query_seconds"] >= 0.006


def test_timed_without_a_result_is_a_stopwatch() -> None:
    clock = timed()
    with clock:
        time.sleep(0.01)
    first = clock.last
    with clock:
        pass
    assert first >= 0.01 and clock.last < first
    assert clock.seconds == pytest.approx(first + clock.last)


def test_timed_needs_the_operation_it_counts() -> None:
    with pytest.raises(ValueError, match="name the operation"):
        timed(IterationResult())
