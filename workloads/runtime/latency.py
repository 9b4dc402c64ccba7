"""Latency percentiles from a constant-size sketch, however long the run.

An iteration adds its latencies to a DDSketch (Masson, Rim and Lee, VLDB 2019: every quantile
within 1 % of the true value, at most 2048 bins, mergeable); the recorder merges each
iteration's sketch into the run's as it arrives, so neither the workers' messages nor the
run's memory grow with its length. hdrhistogram, as fio and wrk use, would do the same, but its
only release builds a C extension on arm64 images; ddsketch is pure Python.
"""

from __future__ import annotations

from collections.abc import Sequence

from ddsketch import LogCollapsingLowestDenseDDSketch

RELATIVE_ACCURACY = 0.01
BIN_LIMIT = 2048
PERCENTILES = {"p50": 0.50, "p90": 0.90, "p99": 0.99, "p999": 0.999}
# At most this many of an iteration's latencies, evenly spaced, go into its sketch: a sketch
# is cheap to send, but adding 300 000 values a second in Python is not.
KEPT_PER_ITERATION = 4096

Sketch = LogCollapsingLowestDenseDDSketch


def new_sketch() -> Sketch:
    return LogCollapsingLowestDenseDDSketch(
        relative_accuracy=RELATIVE_ACCURACY, bin_limit=BIN_LIMIT
    )


def evenly(values: Sequence[float], limit: int = KEPT_PER_ITERATION) -> Sequence[float]:
    """At most ``limit`` of ``values``, evenly spaced (all of them when there are fewer)."""
    if len(values) <= limit:
        return values
    return values[:: -(-len(values) // limit)]


def percentiles(sketch: Sketch | None) -> dict[str, float]:
    """p50, p90, p99 and p999 (empty when nothing was measured)."""
    if sketch is None or sketch.count == 0:
        return {}
    return {key: float(sketch.get_quantile_value(q)) for key, q in PERCENTILES.items()}
