"""Load shapes stay in bounds and are seeded; the duty cycle reaches its target."""

from __future__ import annotations

import pytest

from workloads.runtime.choices import PROFILES
from workloads.runtime.iterations import IterationRecord, IterationResult
from workloads.runtime.loadshape import DutyCycle, LoadShape
from workloads.runtime.record import Recorder

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("profile", PROFILES)
def test_targets_stay_within_the_intensity(profile: str) -> None:
    shape = LoadShape(profile, 80, 120, seed=3)
    targets = [shape.target(t / 4) for t in range(480)]
    assert all(0 < target <= 0.8 + 1e-9 for target in targets)


def test_steady_is_flat_and_ramp_rises() -> None:
    assert {LoadShape("steady", 60, 10, 1).target(t) for t in range(10)} == {0.6}
    ramp = [LoadShape("ramp", 100, 100, 1).target(t) for t in range(0, 100, 10)]
    assert ramp == sorted(ramp) and ramp[0] < 0.2 and ramp[-1] == 1.0


def test_wave_swings_between_floor_and_peak() -> None:
    wave = [LoadShape("wave", 100, 120, 1).target(t / 2) for t in range(240)]
    assert min(wave) < 0.15 and max(wave) > 0.95


def test_bursty_is_seeded() -> None:
    def trace(seed: int) -> list[float]:
        return [LoadShape("bursty", 100, 120, seed).target(t) for t in range(120)]

    assert trace(5) == trace(5)
    assert trace(5) != trace(6)
    assert sorted({round(target, 6) for target in trace(5)}) == [0.1, 1.0]


@pytest.mark.parametrize(("intensity", "unit"), [(50, 0.03), (25, 0.2), (80, 0.005)])
def test_duty_cycle_reaches_its_target_whatever_the_unit(intensity: float, unit: float) -> None:
    clock = [0.0]

    def wait(seconds: float) -> None:
        clock[0] += seconds

    cycle = DutyCycle(LoadShape("steady", intensity, 100, 1), 0.0, wait, lambda: clock[0])
    busy = 0.0
    while clock[0] < 60:
        clock[0] += unit
        busy += unit
        cycle.after_iteration(unit)
    assert busy / clock[0] == pytest.approx(intensity / 100, abs=0.02)


def test_full_intensity_never_sleeps() -> None:
    cycle = DutyCycle(LoadShape("steady", 100, 10, 1), 0.0, lambda s: pytest.fail("slept"))
    assert cycle.after_iteration(0.5) == 0.0


def test_a_pause_ends_early_when_a_burst_begins() -> None:
    """At 10 % a 1 s unit owes 9 s of idleness; the shape turns to 100 % 2 s in."""

    class Step(LoadShape):
        def target(self, elapsed: float) -> float:
            return 0.1 if elapsed < 2.0 else 1.0

    clock = [1.0]

    def wait(seconds: float) -> None:
        clock[0] += seconds

    cycle = DutyCycle(Step("steady", 100, 100, 1), 0.0, wait, lambda: clock[0])
    assert cycle.after_iteration(1.0) == pytest.approx(1.0, abs=0.26)  # not 9 s


def test_a_stop_cuts_the_pause_short() -> None:
    cycle = DutyCycle(LoadShape("steady", 10, 100, 1), 0.0, lambda seconds: True)
    assert cycle.after_iteration(1.0) < 0.1


def test_the_window_ends_when_the_workers_stop_not_at_the_last_unit() -> None:
    # Two 1 s units at 50 %: each owes a 1 s pause, the second one's up to the stop at 4 s.
    recorder = Recorder()
    for index, started in enumerate((0.0, 2.0)):
        recorder.add(IterationRecord(index, 0, started, 1.0, IterationResult()))
    assert recorder.active_window() == (0.0, 3.0)  # the pause after the last unit is unknown yet
    recorder.work_ended(4.0)
    assert recorder.active_window() == (0.0, 4.0)  # 2 busy seconds of 4: 50 %, not 67 %
    recorder.work_ended(2.5)  # a stop seen before the last unit ended never cuts the window
    assert recorder.active_window() == (0.0, 4.0)
