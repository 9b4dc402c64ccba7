"""Run totals: rates over busy time and over the time of timed phases."""

from __future__ import annotations

import pytest

from workloads.runtime.record import Totals

pytestmark = pytest.mark.unit


def _totals(work: dict[str, float], workers: int = 1, busy_seconds: float = 10.0) -> Totals:
    return Totals(iterations=1, workers=workers, busy_seconds=busy_seconds, work=work)


def test_rate_over_divides_by_the_time_per_worker() -> None:
    work = {"bytes": 400.0, "seconds": 4.0}
    assert _totals(work).rate_over("bytes", "seconds") == 100.0
    assert _totals(work, workers=2).rate_over("bytes", "seconds") == 200.0  # two side by side
    assert _totals({}).rate_over("bytes", "seconds") is None  # the phase never ran


def test_rate_over_sums_the_phases_and_applies_the_unit() -> None:
    totals = _totals({"bytes": 3e6, "seconds_read": 1.0, "seconds_write": 2.0}, workers=2)
    assert totals.rate_over("bytes", "seconds_read", "seconds_write", unit=1e6) == 2.0
    assert totals.rate_over("bytes", "seconds_read", unit=1e6) == 6.0


def test_without_time_spent_there_is_no_rate_not_a_rate_of_zero() -> None:
    totals = _totals({"bytes": 5.0, "seconds": 0.0})
    assert totals.rate_over("bytes", "seconds") is None
    assert totals.rate_over("bytes") is None  # no phases named
    assert _totals({}, busy_seconds=0.0).rate("bytes") is None  # no iteration
    assert _totals({"seconds": 1.0}).rate_over("bytes", "seconds") == 0.0  # time, nothing done


def test_rate_over_leaves_out_the_rest_of_the_busy_time() -> None:
    totals = _totals({"nodes": 50.0, "seconds_tree": 5.0}, busy_seconds=25.0)
    assert totals.rate_over("nodes", "seconds_tree") == 10.0
    assert totals.rate("nodes") == pytest.approx(2.0)
