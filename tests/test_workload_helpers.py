"""The helpers a workload's module is written with: timing, scratch folders, rotation, and the
GPU workloads' run skeleton."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from workloads.runtime.iterations import Iteration, IterationFunction, IterationResult
from workloads.runtime.rates import Rate, timed
from workloads.runtime.record import Totals

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


def _iteration(index: int, scratch: Path | None = None) -> Iteration:
    return Iteration(index, 11, 1.0, 1 << 30, 0, 1, threading.Event(), math.inf, scratch)


def test_an_iteration_folder_is_its_own_and_goes_with_what_it_holds(tmp_path: Path) -> None:
    with _iteration(3, tmp_path).folder() as folder:
        assert folder.parent == tmp_path and folder.is_dir()
        (folder / "data.bin").write_bytes(b"x")
        (folder / "nested").mkdir()
        (folder / "nested" / "more").write_bytes(b"y")
        with _iteration(4, tmp_path).folder() as other:
            assert other != folder
    assert list(tmp_path.iterdir()) == []


def test_an_iteration_folder_goes_when_the_iteration_raises(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="disk full"), _iteration(0, tmp_path).folder() as folder:
        (folder / "part").write_bytes(b"x")
        raise OSError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_an_iteration_folder_needs_scratch() -> None:
    with pytest.raises(RuntimeError, match="scratch=True"), _iteration(0).folder():
        pass


def test_rotations_take_their_choices_in_turn_and_every_pair_meets() -> None:
    operations, kinds = ("a", "b", "c"), ("x", "y")
    taken = [_iteration(index).rotate(operations) for index in range(7)]
    assert taken == ["a", "b", "c", "a", "b", "c", "a"]
    pairs = {
        (_iteration(i).rotate(operations), _iteration(i).rotate(kinds, every=len(operations)))
        for i in range(len(operations) * len(kinds))
    }
    assert len(pairs) == len(operations) * len(kinds)
    assert [_iteration(i).rotate(range(4)) for i in (0, 5, 11)] == [0, 1, 3]


class _RecordingContext:
    """What run_on_device asks of a Context, recording the calls in order."""

    def __init__(self, threads: int) -> None:
        self.params = SimpleNamespace(device="cpu", seed=3, workers=threads, scale=1.0)
        self.workload = SimpleNamespace(envelope=SimpleNamespace(gpu_memory=0))
        self.memory_budget = 1 << 30
        self.calls: list[tuple[str, Any]] = []

    def use_device(self, used: str, **facts: Any) -> None:
        self.calls.append(("device", used))

    def note(self, key: str, value: object) -> None:
        self.calls.append(("note", key))

    def inconclusive(self, name: str, reason: str) -> None:
        self.calls.append(("inconclusive", name))

    def metric(self, name: str, value: float | None, unit: str) -> None:
        self.calls.append(("metric", name))

    def run_iterations(
        self, fn: IterationFunction, *, processes: bool, rates: dict[str, Rate]
    ) -> Totals:
        self.calls.append(("run", processes))
        for index in range(3):
            fn(_iteration(index))
        return Totals(iterations=3, workers=1, busy_seconds=1.0)


def test_the_gpu_skeleton_runs_the_work_inline_then_reports_loss_and_device_use() -> None:
    torch = pytest.importorskip("torch")
    from workloads.gpu.device import DeviceWork, run_on_device

    class Work(DeviceWork):
        trains = True

        def __call__(self, iteration: Iteration) -> IterationResult:
            self.losses.append(1.0 / (iteration.index + 1))
            self.observed_dtype = "float32"
            return IterationResult(size=1)

        def details(self) -> dict[str, object]:
            return {"geometry": {"width": 8}}

    ctx = _RecordingContext(torch.get_num_threads())
    work = run_on_device(ctx, Work, rates={})  # type: ignore[arg-type]
    assert isinstance(work, Work) and work.device.type == "cpu"
    assert work.losses == [1.0, 0.5, 1 / 3]
    assert ctx.calls == [
        ("device", "cpu"),
        ("note", "geometry"),
        ("run", False),
        ("inconclusive", "training loss decreased"),  # 3 steps: too few to judge
        ("metric", "final_loss"),
        ("note", "compute_dtype"),
        ("note", "sizes"),
        ("note", "oom_backoffs"),
    ]
